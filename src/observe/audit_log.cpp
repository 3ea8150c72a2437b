#include "observe/audit_log.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/encoding.hpp"

namespace tunnel::observe {

namespace {

using core::errc;

std::string hash_line(std::string_view line) {
    return core::hex_encode(core::sha256(line));
}

std::string iso8601(std::chrono::system_clock::time_point t) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch());
    auto secs = std::chrono::floor<std::chrono::seconds>(ms);
    auto frac = (ms - secs).count();
    if (frac < 0) frac += 1000;
    std::time_t tt = static_cast<std::time_t>(secs.count());
    std::tm tm{};
    gmtime_r(&tt, &tm);
    return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z", tm, frac);
}

core::error io_failure(const std::string& path, std::string_view what) {
    return {errno == ENOENT                       ? errc::not_found
            : (errno == EACCES || errno == EPERM) ? errc::permission_denied
                                                  : errc::io_error,
            fmt::format("audit log {}: {}: {}", path, what, std::strerror(errno))};
}

// The last line of the file at fd (without its newline), or an error when
// the file does not end with a newline. Reads backwards in blocks.
core::result<std::string> last_line(int fd, const std::string& path) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return tl::unexpected(io_failure(path, "cannot stat"));
    off_t end = st.st_size;
    if (end == 0) return std::string();
    std::string tail;
    char buf[4096];
    off_t pos = end;
    for (;;) {
        off_t start =
            pos >= static_cast<off_t>(sizeof buf) ? pos - static_cast<off_t>(sizeof buf) : 0;
        auto n = ::pread(fd, buf, static_cast<std::size_t>(pos - start), start);
        if (n < 0) return tl::unexpected(io_failure(path, "cannot read"));
        tail.insert(0, buf, static_cast<std::size_t>(n));
        pos = start;
        if (tail.back() != '\n')
            return core::fail(
                errc::invalid_argument,
                fmt::format(
                    "audit log {} ends with an incomplete record (a torn write?); check it with "
                    "`tunnel audit verify {}`, then move it aside to start a new log",
                    path, path));
        auto nl = tail.rfind('\n', tail.size() - 2);
        if (nl != std::string::npos) return tail.substr(nl + 1, tail.size() - nl - 2);
        if (pos == 0) return tail.substr(0, tail.size() - 1);
    }
}

}  // namespace

const std::string& audit_genesis_hash() {
    static const std::string zeros(64, '0');
    return zeros;
}

audit_log::audit_log(std::string path, int fd, std::string last_hash, wall_clock now)
    : path_(std::move(path)), fd_(fd), last_hash_(std::move(last_hash)), now_(std::move(now)) {}

audit_log::audit_log(audit_log&& other) noexcept
    : path_(std::move(other.path_)),
      fd_(std::exchange(other.fd_, -1)),
      last_hash_(std::move(other.last_hash_)),
      now_(std::move(other.now_)),
      mutex_(std::move(other.mutex_)) {}

audit_log& audit_log::operator=(audit_log&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) ::close(fd_);
        path_ = std::move(other.path_);
        fd_ = std::exchange(other.fd_, -1);
        last_hash_ = std::move(other.last_hash_);
        now_ = std::move(other.now_);
        mutex_ = std::move(other.mutex_);
    }
    return *this;
}

audit_log::~audit_log() {
    if (fd_ >= 0) ::close(fd_);
}

core::result<audit_log> audit_log::open(const std::string& path, wall_clock now) {
    int fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return tl::unexpected(io_failure(path, "cannot open"));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        auto e =
            errno == EWOULDBLOCK
                ? core::error{errc::resource_exhausted,
                              fmt::format(
                                  "audit log {} is in use by another process (one writer per file)",
                                  path)}
                : io_failure(path, "cannot lock");
        ::close(fd);
        return tl::unexpected(e);
    }
    auto last = last_line(fd, path);
    if (!last) {
        ::close(fd);
        return tl::unexpected(last.error());
    }
    auto hash = last->empty() ? audit_genesis_hash() : hash_line(*last);
    if (!now) now = [] { return std::chrono::system_clock::now(); };
    return audit_log(path, fd, std::move(hash), std::move(now));
}

std::string audit_log::last_hash() const {
    std::lock_guard lock(*mutex_);
    return last_hash_;
}

core::result<void> audit_log::append(std::string_view event, const nlohmann::json& fields) {
    if (!fields.is_null() && !fields.is_object())
        return core::fail(errc::invalid_argument, "audit record fields must be a JSON object");
    nlohmann::ordered_json record;
    record["ts"] = iso8601(now_());
    record["event"] = std::string(event);
    if (fields.is_object())
        for (const auto& [key, value] : fields.items()) {
            if (key == "ts" || key == "event" || key == "prev")
                return core::fail(errc::invalid_argument,
                                  fmt::format("audit record field \"{}\" is reserved", key));
            record[key] = value;
        }
    std::lock_guard lock(*mutex_);
    if (fd_ < 0) return core::fail(errc::io_error, "audit log is closed");
    record["prev"] = last_hash_;
    auto line = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::string out = line + "\n";
    std::string_view rest(out);
    while (!rest.empty()) {
        auto n = ::write(fd_, rest.data(), rest.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return tl::unexpected(io_failure(path_, "cannot append"));
        }
        rest.remove_prefix(static_cast<std::size_t>(n));
    }
    last_hash_ = hash_line(line);
    return {};
}

core::result<audit_verification> verify_audit_log(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return tl::unexpected(io_failure(path, "cannot read"));
    }
    audit_verification v;
    std::string expected = audit_genesis_hash();
    std::string line;
    std::size_t number = 0;
    auto broken = [&](std::string why) {
        v.ok = false;
        v.broken_line = number;
        v.why = std::move(why);
        return v;
    };
    while (std::getline(in, line)) {
        ++number;
        if (in.eof()) return broken("incomplete last record (no newline at the end of the file)");
        auto record = nlohmann::json::parse(line, nullptr, false);
        if (record.is_discarded() || !record.is_object()) return broken("not a JSON object");
        for (const char* key : {"ts", "event", "prev"})
            if (!record.contains(key) || !record[key].is_string())
                return broken(fmt::format("no \"{}\" string", key));
        const auto& prev = record["prev"].get_ref<const std::string&>();
        if (prev != expected)
            return broken(
                number == 1
                    ? std::string(
                          "prev of the first record is not 64 zeros (records before it were "
                          "removed?)")
                    : fmt::format("prev does not match the SHA-256 of line {} (line {} or {} was "
                                  "edited, or records were removed or reordered)",
                                  number - 1, number - 1, number));
        expected = hash_line(line);
        ++v.records;
    }
    if (in.bad()) return tl::unexpected(io_failure(path, "cannot read"));
    v.ok = true;
    return v;
}

}  // namespace tunnel::observe
