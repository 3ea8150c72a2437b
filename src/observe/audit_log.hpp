// The relay's audit log (ARCHITECTURE §5): append-only JSON lines, each
// chained to the one before, so that editing, removing or reordering a
// record is detected by verify_audit_log() / `tunnel audit verify FILE`.
//
//   {"ts":"2026-11-22T05:53:39.123Z","event":"attach","tenant":"acme",...,"prev":"<64 hex>"}
//
// `prev` is the hex SHA-256 of the previous line's bytes (without its
// newline); the first record's `prev` is 64 zeros. Opening an existing log
// continues the chain from its last line. Each record is written with one
// write(2) as it is appended (no user-space buffering). One writer per file:
// open() takes an exclusive flock and refuses a file another process holds.
// Never put secrets in fields (log fingerprints).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "core/error.hpp"

namespace tunnel::observe {

class audit_log {
  public:
    using wall_clock = std::function<std::chrono::system_clock::time_point()>;

    // Creates the file (mode 0600) or continues an existing one. Fails when it
    // cannot be opened or locked, or when it ends with an incomplete line
    // (a torn write: repair or move the file aside, then restart).
    [[nodiscard]] static core::result<audit_log> open(const std::string& path, wall_clock now = {});

    audit_log(audit_log&& other) noexcept;
    audit_log& operator=(audit_log&& other) noexcept;
    audit_log(const audit_log&) = delete;
    audit_log& operator=(const audit_log&) = delete;
    ~audit_log();

    // Appends {"ts", "event", ...fields, "prev"}. `fields` must be a JSON
    // object (or null) without the keys ts, event and prev. Thread-safe.
    [[nodiscard]] core::result<void> append(std::string_view event, const nlohmann::json& fields);

    [[nodiscard]] const std::string& path() const noexcept { return path_; }
    // Hex SHA-256 of the last line written (64 zeros for an empty log).
    [[nodiscard]] std::string last_hash() const;

  private:
    audit_log(std::string path, int fd, std::string last_hash, wall_clock now);

    std::string path_;
    int fd_ = -1;
    std::string last_hash_;
    wall_clock now_;
    std::unique_ptr<std::mutex> mutex_ = std::make_unique<std::mutex>();
};

struct audit_verification {
    bool ok = false;
    std::size_t records = 0;      // records checked (all of them when ok)
    std::size_t broken_line = 0;  // 1-based, when !ok
    std::string why;              // when !ok, e.g. "prev does not match the SHA-256 of line 3"
};

// Reads the whole file and checks every link. errc::not_found /
// permission_denied when it cannot be read.
[[nodiscard]] core::result<audit_verification> verify_audit_log(const std::string& path);

// The 64-zero `prev` of a first record.
[[nodiscard]] const std::string& audit_genesis_hash();

}  // namespace tunnel::observe
