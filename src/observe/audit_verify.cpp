// verify_audit_log() and audit_rotated_set(): the reading side of
// audit_log.hpp.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "observe/audit_log.hpp"

namespace tunnel::observe {

namespace {

using core::errc;

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

}  // namespace

std::vector<std::string> audit_rotated_set(const std::string& path) {
    namespace fs = std::filesystem;
    const fs::path p(path);
    const std::string prefix = p.filename().string() + ".";
    std::map<unsigned long, std::string, std::greater<>> rotated;
    std::error_code ec;
    const auto dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        const auto name = entry.path().filename().string();
        if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
        const auto digits = name.substr(prefix.size());
        if (digits.size() > 9 ||
            !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
            continue;
        rotated[std::stoul(digits)] =
            (p.has_parent_path() ? (dir / name) : fs::path(name)).string();
    }
    std::vector<std::string> out;
    for (const auto& [n, file] : rotated) out.push_back(file);
    out.push_back(path);
    return out;
}

core::result<audit_verification> verify_audit_log(const std::string& path) {
    return verify_audit_log(std::vector<std::string>{path});
}

core::result<audit_verification> verify_audit_log(const std::vector<std::string>& files,
                                                  const audit_verify_options& options) {
    audit_verification v;
    v.files = files;
    const std::string& key = options.hmac_key;
    const std::optional<std::string> expected_head =
        options.expect_head ? std::optional(lower(*options.expect_head)) : std::nullopt;
    if (expected_head && *expected_head == audit_genesis_hash()) v.expect_head_record = 0;
    bool head_seen = expected_head && *expected_head == audit_genesis_hash();
    std::string expected = audit_genesis_hash();
    std::optional<bool> keyed;  // the mode, from the first record
    std::string line;
    std::size_t number = 0;
    std::string previous_file;
    auto broken = [&](const std::string& file, std::string why) {
        v.ok = false;
        v.file = file;
        v.broken_line = number;
        v.why = std::move(why);
        return v;
    };
    for (std::size_t f = 0; f < files.size(); ++f) {
        const std::string& file = files[f];
        std::ifstream in(file, std::ios::binary);
        if (!in) {
            const int err = errno;
            return core::fail(
                err == ENOENT   ? errc::not_found
                : err == EACCES ? errc::permission_denied
                                : errc::io_error,
                fmt::format("audit log {}: cannot read: {}", file, std::strerror(err)));
        }
        number = 0;
        while (std::getline(in, line)) {
            ++number;
            if (in.eof())
                return broken(file, "incomplete last record (no newline at the end of the file)");
            auto record = nlohmann::json::parse(line, nullptr, false);
            if (record.is_discarded() || !record.is_object())
                return broken(file, "not a JSON object");
            for (const char* k : {"ts", "event"})
                if (!record.contains(k) || !record[k].is_string())
                    return broken(file, fmt::format("no \"{}\" string", k));
            const bool has_hmac = record.contains("prev_hmac") && record["prev_hmac"].is_string();
            const bool has_prev = record.contains("prev") && record["prev"].is_string();
            if (has_hmac == has_prev)
                return broken(file,
                              "needs exactly one of \"prev\" (unkeyed) and \"prev_hmac\" (keyed)");
            if (!keyed) {
                keyed = has_hmac;
                v.keyed = has_hmac;
                if (has_hmac && key.empty())
                    return broken(file,
                                  "the log is keyed (prev_hmac, HMAC-SHA256): pass --hmac-key-file "
                                  "with the relay's audit.hmac_key_file to verify it");
                if (!has_hmac && !key.empty())
                    return broken(file,
                                  "the log is not keyed (its records carry prev, not prev_hmac): "
                                  "verify it without --hmac-key-file");
            } else if (*keyed != has_hmac) {
                return broken(file, fmt::format("uses {} but the records before it use {} (a "
                                                "record was inserted from another log?)",
                                                has_hmac ? "prev_hmac" : "prev",
                                                has_hmac ? "prev" : "prev_hmac"));
            }
            const auto& link =
                record[has_hmac ? "prev_hmac" : "prev"].get_ref<const std::string&>();
            const bool first_of_set = f == 0 && number == 1;
            const bool rotated_start = record["event"] == "audit_rotate";
            if (first_of_set && rotated_start) {
                v.continues = true;  // earlier files were rotated away: its link is unknown here
            } else if (link != expected) {
                const char* digest = has_hmac ? "HMAC-SHA256" : "SHA-256";
                if (first_of_set)
                    return broken(file,
                                  "the first record does not start a log (link is not 64 zeros, "
                                  "and it is no audit_rotate record): records before it were "
                                  "removed?");
                if (number == 1)
                    return broken(file, fmt::format("the first record does not continue {} (its "
                                                    "link is not the {} of that file's last "
                                                    "line): a file is missing, out of order, or "
                                                    "was edited",
                                                    previous_file, digest));
                return broken(
                    file,
                    fmt::format("{} does not match the {} of line {} (line {} or {} "
                                "was edited, or records were removed or "
                                "reordered{})",
                                has_hmac ? "prev_hmac" : "prev", digest, number - 1, number - 1,
                                number, has_hmac ? ", or another key was used" : ""));
            }
            expected = audit_chain_value(line, key);
            ++v.records;
            if (expected_head && !head_seen && expected == *expected_head) {
                head_seen = true;
                v.expect_head_record = v.records;
            }
        }
        if (in.bad())
            return core::fail(errc::io_error, fmt::format("audit log {}: cannot read: {}", file,
                                                          std::strerror(errno)));
        previous_file = file;
    }
    v.head = expected;
    if (expected_head && !head_seen) {
        number = 0;
        return broken(files.empty() ? std::string() : files.back(),
                      fmt::format("no record has the expected head {}: records up to it were cut "
                                  "off (truncation), the log was rewritten, or the file that held "
                                  "it was rotated away; the head now is {}",
                                  *expected_head, expected));
    }
    v.ok = true;
    return v;
}

}  // namespace tunnel::observe
