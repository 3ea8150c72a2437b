#include "support/sanitizer_reports.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <system_error>

namespace tunnel::test {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t max_report_bytes = 64 * 1024;  // per report in a failure message
struct runtime {
    std::string_view variable;  // its options
    std::string_view file;      // report file prefix
};
constexpr runtime runtimes[] = {{"ASAN_OPTIONS", "asan"}, {"UBSAN_OPTIONS", "ubsan"}};

// One directory per test process, made on first use.
const std::string& report_dir() {
    static std::once_flag once;
    static std::string dir;
    std::call_once(once, [] {
        std::string pattern = "/tmp/tunnel-sanitizer-XXXXXX";
        if (::mkdtemp(pattern.data()) != nullptr) dir = pattern;
        // Without a directory children keep reporting on their stderr.
    });
    return dir;
}

std::string read_report(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    std::string report = text.str();
    if (report.size() > max_report_bytes) {
        report.resize(max_report_bytes);
        report += "\n[... cut at 64 KiB; the whole report is " + path.string() + "]";
    }
    return report;
}

// A report file is <runtime>.<pid>; seen ones get a ".seen" suffix.
bool is_unseen_report(const fs::path& path) {
    const std::string name = path.filename().string();
    for (const auto& runtime : runtimes) {
        const std::string prefix = std::string(runtime.file) + ".";
        if (name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0 &&
            std::all_of(name.begin() + static_cast<std::ptrdiff_t>(prefix.size()), name.end(),
                        [](char c) { return c >= '0' && c <= '9'; }))
            return true;
    }
    return false;
}

void mark_seen(const fs::path& path) {
    std::error_code ec;
    fs::rename(path, path.string() + ".seen", ec);
}

// At the end of the test program: reports nobody reaped (grandchildren).
class unseen_report_check : public ::testing::Environment {
  public:
    void TearDown() override {
        const std::string reports = take_unseen_sanitizer_reports();
        if (!reports.empty())
            ADD_FAILURE() << "sanitizer reports from processes this test started:\n" << reports;
        if (const std::string& dir = report_dir(); !dir.empty()) {
            std::error_code ec;
            fs::remove_all(dir, ec);
        }
    }
};

[[maybe_unused]] const auto* const registered =
    ::testing::AddGlobalTestEnvironment(new unseen_report_check);

}  // namespace

void route_sanitizer_reports(std::vector<std::string>& env) {
    const std::string& dir = report_dir();
    if (dir.empty()) return;
    for (const auto& runtime : runtimes) {
        const std::string name(runtime.variable);
        const std::string option = "log_path=" + dir + "/" + std::string(runtime.file);
        auto entry = std::find_if(env.begin(), env.end(), [&](const std::string& e) {
            return e.size() > name.size() && e.compare(0, name.size(), name) == 0 &&
                   e[name.size()] == '=';
        });
        if (entry == env.end()) {
            env.push_back(name + "=" + option);
        } else {
            const bool empty = entry->size() == name.size() + 1;
            *entry += (empty ? "" : ":") + option;  // the last log_path wins
        }
    }
}

void check_sanitizer_reports(pid_t pid, std::string_view program) {
    const std::string& dir = report_dir();
    if (dir.empty() || pid <= 0) return;
    for (const auto& runtime : runtimes) {
        const fs::path path =
            fs::path(dir) / (std::string(runtime.file) + "." + std::to_string(pid));
        std::error_code ec;
        if (!fs::exists(path, ec)) continue;
        ADD_FAILURE() << "sanitizer report from " << program << " (pid " << pid << "):\n"
                      << read_report(path);
        mark_seen(path);
    }
}

std::string take_unseen_sanitizer_reports() {
    const std::string& dir = report_dir();
    if (dir.empty()) return {};
    std::vector<fs::path> found;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec))
        if (is_unseen_report(entry.path())) found.push_back(entry.path());
    std::sort(found.begin(), found.end());
    std::string all;
    for (const auto& path : found) {
        all += "--- " + path.filename().string() + " ---\n" + read_report(path) + "\n";
        mark_seen(path);
    }
    return all;
}

}  // namespace tunnel::test
