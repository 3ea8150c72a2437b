#include "observe/audit_log.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/encoding.hpp"

namespace tunnel::observe {

namespace {

using core::errc;

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

core::error io_failure(const std::string& path, std::string_view what, int err) {
    return {err == ENOENT                     ? errc::not_found
            : (err == EACCES || err == EPERM) ? errc::permission_denied
                                              : errc::io_error,
            fmt::format("audit log {}: {}: {}", path, what, std::strerror(err))};
}

// Up to `n` last lines of the file at fd (without newlines), oldest first;
// an error when the file does not end with a newline. Reads backwards.
core::result<std::vector<std::string>> last_lines(int fd, const std::string& path, std::size_t n) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return tl::unexpected(io_failure(path, "cannot stat", errno));
    if (st.st_size == 0) return std::vector<std::string>{};
    std::string tail;
    char buf[4096];
    off_t pos = st.st_size;
    std::size_t newlines = 0;  // in tail, not counting its final one
    while (pos > 0 && newlines < n) {
        const off_t start =
            pos >= static_cast<off_t>(sizeof buf) ? pos - static_cast<off_t>(sizeof buf) : 0;
        auto got = ::pread(fd, buf, static_cast<std::size_t>(pos - start), start);
        if (got < 0) return tl::unexpected(io_failure(path, "cannot read", errno));
        tail.insert(0, buf, static_cast<std::size_t>(got));
        pos = start;
        if (tail.back() != '\n')
            return core::fail(
                errc::invalid_argument,
                fmt::format(
                    "audit log {} ends with an incomplete record (a torn write?); check it with "
                    "`tunnel audit verify {}`, then move it aside to start a new log",
                    path, path));
        newlines = static_cast<std::size_t>(std::count(tail.begin(), tail.end() - 1, '\n'));
    }
    std::vector<std::string> lines;
    std::string_view body(tail.data(), tail.size() - 1);
    while (lines.size() < n) {
        auto nl = body.rfind('\n');
        if (nl == std::string_view::npos) {
            if (pos == 0) lines.insert(lines.begin(), std::string(body));
            break;
        }
        lines.insert(lines.begin(), std::string(body.substr(nl + 1)));
        body = body.substr(0, nl);
    }
    return lines;
}

}  // namespace

const std::string& audit_genesis_hash() {
    static const std::string zeros(64, '0');
    return zeros;
}

std::string audit_chain_value(std::string_view line, std::string_view key) {
    return core::hex_encode(key.empty() ? core::sha256(line) : core::hmac_sha256(key, line));
}

struct audit_log::impl {
    audit_log_options options;
    wall_clock now;
    int fd = -1;
    std::string head;
    std::uint64_t size = 0;
    mutable std::mutex mutex;

    ~impl() {
        if (fd >= 0) ::close(fd);
    }

    [[nodiscard]] const char* link_field() const {
        return options.hmac_key.empty() ? "prev" : "prev_hmac";
    }

    // Appends line + "\n" to fd; a partial write is cut back off.
    core::result<void> write_line(int to, std::uint64_t& at, const std::string& file,
                                  const std::string& line) {
        const std::string out = line + "\n";
        std::size_t done = 0;
        while (done < out.size()) {
            auto n = ::write(to, out.data() + done, out.size() - done);
            if (n > 0) {
                done += static_cast<std::size_t>(n);
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            const int err = n < 0 ? errno : EIO;
            if (done > 0 && ::ftruncate(to, static_cast<off_t>(at)) != 0)
                return core::fail(
                    errc::io_error,
                    fmt::format("audit log {}: cannot append ({}), and cannot cut the partial "
                                "record off ({}): move the file aside before restarting",
                                file, std::strerror(err), std::strerror(errno)));
            return tl::unexpected(io_failure(file, "cannot append", err));
        }
        at += out.size();
        return {};
    }

    std::string render(nlohmann::ordered_json& record) const {
        record[link_field()] = head;
        return record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }

    // PATH -> PATH.1 (-> PATH.2 ...), a new PATH starting with audit_rotate.
    core::result<void> rotate() {
        const std::string& path = options.path;
        const std::string fresh = path + ".new";
        ::unlink(fresh.c_str());
        int nfd = ::open(fresh.c_str(), O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (nfd < 0) return tl::unexpected(io_failure(fresh, "cannot create", errno));
        auto abandon = [&](core::error e) {
            ::close(nfd);
            ::unlink(fresh.c_str());
            return tl::unexpected(std::move(e));
        };
        if (::flock(nfd, LOCK_EX | LOCK_NB) != 0)
            return abandon(io_failure(fresh, "cannot lock", errno));
        nlohmann::ordered_json record;
        record["ts"] = iso8601(now());
        record["event"] = "audit_rotate";
        record["max_bytes"] = options.max_bytes;
        const std::string line = render(record);
        std::uint64_t fresh_size = 0;
        if (auto w = write_line(nfd, fresh_size, fresh, line); !w) return abandon(w.error());
        for (unsigned i = options.keep; i >= 2; --i) {
            const auto from = fmt::format("{}.{}", path, i - 1);
            if (::rename(from.c_str(), fmt::format("{}.{}", path, i).c_str()) != 0 &&
                errno != ENOENT)
                return abandon(io_failure(from, "cannot rotate", errno));
        }
        const auto newest = path + ".1";
        if (::rename(path.c_str(), newest.c_str()) != 0)
            return abandon(io_failure(path, "cannot rotate", errno));
        if (::rename(fresh.c_str(), path.c_str()) != 0) {
            const int err = errno;
            (void)::rename(newest.c_str(), path.c_str());
            return abandon(io_failure(fresh, "cannot rotate", err));
        }
        ::close(fd);
        fd = nfd;
        size = fresh_size;
        head = audit_chain_value(line, options.hmac_key);
        return {};
    }
};

audit_log::audit_log(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
audit_log::audit_log(audit_log&& other) noexcept = default;
audit_log& audit_log::operator=(audit_log&& other) noexcept = default;
audit_log::~audit_log() = default;

core::result<audit_log> audit_log::open(const std::string& path, wall_clock now) {
    audit_log_options o;
    o.path = path;
    return open(std::move(o), std::move(now));
}

core::result<audit_log> audit_log::open(audit_log_options options, wall_clock now) {
    if (options.keep == 0)
        return core::fail(errc::invalid_argument, "audit log: keep must be at least 1");
    auto p = std::make_unique<impl>();
    p->now = now ? std::move(now) : [] { return std::chrono::system_clock::now(); };
    const std::string& path = options.path;
    p->fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (p->fd < 0) return tl::unexpected(io_failure(path, "cannot open", errno));
    if (::flock(p->fd, LOCK_EX | LOCK_NB) != 0) {
        const int err = errno;
        if (err != EWOULDBLOCK) return tl::unexpected(io_failure(path, "cannot lock", err));
        return core::fail(
            errc::resource_exhausted,
            fmt::format("audit log {} is in use by another process (one writer per file)", path));
    }
    auto tail = last_lines(p->fd, path, 2);
    if (!tail) return tl::unexpected(tail.error());
    struct stat st {};
    if (::fstat(p->fd, &st) != 0) return tl::unexpected(io_failure(path, "cannot stat", errno));
    p->size = static_cast<std::uint64_t>(st.st_size);
    const bool want_key = !options.hmac_key.empty();
    if (tail->empty()) {
        p->head = audit_genesis_hash();
    } else {
        auto last = nlohmann::json::parse(tail->back(), nullptr, false);
        const bool keyed =
            last.is_object() && last.contains("prev_hmac") && last["prev_hmac"].is_string();
        const bool unkeyed = last.is_object() && last.contains("prev") && last["prev"].is_string();
        if (!keyed && !unkeyed)
            return core::fail(errc::invalid_argument,
                              fmt::format("audit log {}: the last line is not an audit record; "
                                          "move the file aside to start a new log",
                                          path));
        if (keyed && !want_key)
            return core::fail(
                errc::invalid_argument,
                fmt::format("audit log {} is keyed (HMAC-SHA256, prev_hmac) but no key is set: "
                            "set audit.hmac_key_file to the key it was written with, or move the "
                            "file aside to start a new log",
                            path));
        if (unkeyed && want_key)
            return core::fail(
                errc::invalid_argument,
                fmt::format("audit log {} was written without a key (prev) but audit.hmac_key_file "
                            "is set: move the file aside (and its rotated PATH.N files) to start a "
                            "keyed log, or remove the key",
                            path));
        if (keyed && tail->size() == 2 &&
            last["prev_hmac"].get<std::string>() !=
                audit_chain_value(tail->front(), options.hmac_key))
            return core::fail(
                errc::invalid_argument,
                fmt::format("audit log {}: its last record does not verify under the key in "
                            "audit.hmac_key_file (another key, or an edited file); check it with "
                            "`tunnel audit verify --hmac-key-file KEY {}`",
                            path, path));
        p->head = audit_chain_value(tail->back(), options.hmac_key);
    }
    p->options = std::move(options);
    return audit_log(std::move(p));
}

const std::string& audit_log::path() const noexcept {
    return impl_->options.path;
}

bool audit_log::keyed() const noexcept {
    return !impl_->options.hmac_key.empty();
}

std::string audit_log::last_hash() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->head;
}

std::uint64_t audit_log::size() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->size;
}

core::result<void> audit_log::append(std::string_view event, const nlohmann::json& fields) {
    if (!fields.is_null() && !fields.is_object())
        return core::fail(errc::invalid_argument, "audit record fields must be a JSON object");
    auto& s = *impl_;
    nlohmann::ordered_json record;
    record["ts"] = iso8601(s.now());
    record["event"] = std::string(event);
    if (fields.is_object())
        for (const auto& [key, value] : fields.items()) {
            if (key == "ts" || key == "event" || key == "prev" || key == "prev_hmac")
                return core::fail(errc::invalid_argument,
                                  fmt::format("audit record field \"{}\" is reserved", key));
            record[key] = value;
        }
    std::lock_guard lock(s.mutex);
    if (s.fd < 0) return core::fail(errc::io_error, "audit log is closed");
    auto line = s.render(record);
    if (s.options.max_bytes > 0 && s.size > 0 && s.size + line.size() + 1 > s.options.max_bytes) {
        if (auto r = s.rotate(); !r) return r;
        line = s.render(record);  // linked to the new file's first record
    }
    if (auto w = s.write_line(s.fd, s.size, s.options.path, line); !w) return w;
    s.head = audit_chain_value(line, s.options.hmac_key);
    return {};
}

}  // namespace tunnel::observe
