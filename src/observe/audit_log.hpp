// The relay's audit log (ARCHITECTURE §5): append-only JSON lines, each
// chained to the one before, so that editing, removing or reordering a
// record is detected by verify_audit_log() / `tunnel audit verify FILE`.
//
//   {"ts":"2026-11-22T05:53:39.123Z","event":"attach","tenant":"acme",...,"prev":"<64 hex>"}
//
// The chain value of a line (its bytes without the newline) is
//   - unkeyed: hex SHA-256 of the line, carried by the next record as "prev";
//   - keyed (audit_log_options::hmac_key): hex HMAC-SHA256 of the line under
//     the key, carried as "prev_hmac". Without the key nobody can write a
//     record that verifies, so a log rewritten wholesale is detected.
// The first record's link is 64 zeros. The chain value of the last line is
// the log's head (last_hash()): the relay publishes it on its admin API;
// `tunnel audit verify --expect-head HASH` then proves that the chain still
// passes through that record, i.e. nothing up to it was cut off.
//
// Rotation (max_bytes > 0): before a record would take the file past
// max_bytes, the file becomes PATH.1 (PATH.1 becomes PATH.2 ..., up to
// PATH.<keep>; older ones are dropped) and a new PATH starts with an
// {"event":"audit_rotate"} record linked to the last line of PATH.1: the
// chain runs across files, and verify checks the set in order.
//
// Each record is written with one write(2) as it is appended; a write that
// fails part-way (ENOSPC, EFBIG) is cut back off, so the file never ends in
// a torn record and the chain stays valid once space is back. append()
// reports the failure: callers decide what it means (the relay refuses
// attaches while its audit log cannot be written).
// One writer per file: open() takes an exclusive flock and refuses a file
// another process holds. Opening an existing log continues its chain; a log
// written with another mode (keyed/unkeyed) or another key is refused.
// Never put secrets in fields (log fingerprints).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/error.hpp"

namespace tunnel::observe {

struct audit_log_options {
    std::string path{};
    std::string hmac_key{};       // key bytes; empty: the unkeyed SHA-256 chain
    std::uint64_t max_bytes = 0;  // rotate before the file would pass this; 0: never
    unsigned keep = 10;           // rotated files kept (PATH.1 newest .. PATH.<keep>), >= 1
};

class audit_log {
  public:
    using wall_clock = std::function<std::chrono::system_clock::time_point()>;

    // Creates the file (mode 0600) or continues an existing one. Fails when it
    // cannot be opened or locked, when it ends with an incomplete line
    // (a torn write: repair or move the file aside, then restart), or when it
    // was written in another mode or with another key.
    [[nodiscard]] static core::result<audit_log> open(audit_log_options options,
                                                      wall_clock now = {});
    [[nodiscard]] static core::result<audit_log> open(const std::string& path, wall_clock now = {});

    audit_log(audit_log&& other) noexcept;
    audit_log& operator=(audit_log&& other) noexcept;
    audit_log(const audit_log&) = delete;
    audit_log& operator=(const audit_log&) = delete;
    ~audit_log();

    // Appends {"ts", "event", ...fields, "prev"|"prev_hmac"}. `fields` must be
    // a JSON object (or null) without those keys. Thread-safe. On failure
    // nothing was added (see above) and the error says why.
    [[nodiscard]] core::result<void> append(std::string_view event, const nlohmann::json& fields);

    [[nodiscard]] const std::string& path() const noexcept;
    [[nodiscard]] bool keyed() const noexcept;
    // The head: chain value of the last line (64 zeros for an empty log).
    [[nodiscard]] std::string last_hash() const;
    // Bytes in the current file.
    [[nodiscard]] std::uint64_t size() const;

  private:
    struct impl;
    explicit audit_log(std::unique_ptr<impl> p);
    std::unique_ptr<impl> impl_;
};

struct audit_verify_options {
    std::string hmac_key{};  // empty: the log must be unkeyed ("prev")
    // A head published earlier (hex): the chain must pass through a record
    // with this chain value, else records were cut off or the log rewritten.
    std::optional<std::string> expect_head{};
};

struct audit_verification {
    bool ok = false;
    std::size_t records = 0;         // records checked (all of them when ok)
    std::vector<std::string> files;  // checked, oldest first
    std::string file;                // the file of the first problem, when !ok
    std::size_t broken_line = 0;     // 1-based line in `file`, when !ok (0: after the end)
    std::string why;                 // when !ok, e.g. "prev does not match the SHA-256 of line 3"
    std::string head;                // chain value of the last record checked
    bool keyed = false;              // records carry prev_hmac
    bool continues = false;  // the first file starts with audit_rotate (older files dropped)
    std::size_t expect_head_record = 0;  // 1-based record number whose chain value matched
};

// Checks every link of `files`, in order, oldest first (a rotated set:
// PATH.3, PATH.2, PATH.1, PATH). errc::not_found / permission_denied when a
// file cannot be read.
[[nodiscard]] core::result<audit_verification> verify_audit_log(
    const std::vector<std::string>& files, const audit_verify_options& options = {});
[[nodiscard]] core::result<audit_verification> verify_audit_log(const std::string& path);

// PATH's rotated set, oldest first: every existing PATH.<n> by descending n,
// then PATH itself.
[[nodiscard]] std::vector<std::string> audit_rotated_set(const std::string& path);

// The 64-zero link of a first record.
[[nodiscard]] const std::string& audit_genesis_hash();

// The chain value of one line: hex SHA-256, or hex HMAC-SHA256 under `key`.
[[nodiscard]] std::string audit_chain_value(std::string_view line, std::string_view key);

}  // namespace tunnel::observe
