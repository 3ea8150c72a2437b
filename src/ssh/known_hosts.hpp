// OpenSSH known_hosts files: reading (plain, `[host]:port`, hashed `|1|`,
// wildcard and negated patterns, `@revoked`, `@cert-authority`) and
// appending a new key for StrictHostKeyChecking=accept-new.
//
// Reading never fails: missing files are normal, and unreadable files and
// malformed lines are skipped and remembered in skipped() for a debug
// message, as OpenSSH does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace tunnel::ssh {

enum class host_key_status {
    match,    // an entry for this host holds exactly this key
    unknown,  // no entry for this host with this key type
    changed,  // the host has an entry of this key type with a different key
    revoked,  // the key is listed under @revoked for this host
};

struct known_hosts_location {
    std::string path;
    std::size_t line = 0;  // 1-based

    friend bool operator==(const known_hosts_location&, const known_hosts_location&) = default;
};

struct host_key_check {
    host_key_status status = host_key_status::unknown;
    // match: the matching entry; changed: the conflicting entry (what to tell
    // the user to remove); revoked: the @revoked entry.
    std::optional<known_hosts_location> where;
    // Key types (normalised) known for this host other than the one checked.
    // Non-empty with status unknown means OpenSSH's warning "keys of a
    // different type are already known for this host".
    std::vector<std::string> other_key_types;
};

// A line that was not understood, or a file that could not be read (line 0).
struct skipped_line {
    std::string path;
    std::size_t line = 0;
    std::string reason;
};

class known_hosts {
  public:
    known_hosts() = default;

    // Reads the files in order (user files, then global files). A missing
    // file is skipped silently; an unreadable one is recorded in skipped().
    [[nodiscard]] static known_hosts load(const std::vector<std::string>& paths);

    // Adds the entries of `text` as if read from a file named `source_name`.
    void add_text(std::string_view text, std::string_view source_name);

    // `key_type` may be a host key algorithm (rsa-sha2-512 counts as ssh-rsa);
    // `key_base64` is the key blob as in a known_hosts line. `port` 22 looks up
    // `host`, any other port `[host]:port`. Host names compare case-insensitively.
    [[nodiscard]] host_key_check check(std::string_view host, uint16_t port,
                                       std::string_view key_type,
                                       std::string_view key_base64) const;

    // Normalised key types of plain entries for this host, in file order,
    // without duplicates (to order the host key algorithms we offer).
    [[nodiscard]] std::vector<std::string> key_types_for(std::string_view host,
                                                         uint16_t port) const;

    // @cert-authority entries whose host patterns match this host (same name
    // rules as check()), in file order: the CAs trusted to sign its host
    // certificates.
    struct cert_authority {
        std::string key_blob;  // the CA's public key
        known_hosts_location where;
    };
    [[nodiscard]] std::vector<cert_authority> cert_authorities_for(std::string_view host,
                                                                   uint16_t port) const;

    // The @revoked entry for this host that lists `key_blob` (a host key or a
    // CA key), if any.
    [[nodiscard]] std::optional<known_hosts_location> revoked_for(std::string_view host,
                                                                  uint16_t port,
                                                                  std::string_view key_blob) const;

    [[nodiscard]] const std::vector<skipped_line>& skipped() const noexcept { return skipped_; }
    [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }

    // Appends `host keytype key` as one complete line (`[host]:port` for
    // ports other than 22; `hash_host` writes the `|1|salt|hmac` form that
    // HashKnownHosts=yes asks for). Creates the parent directory (0700) and
    // the file (0600) when missing; starts on a new line if the file does
    // not end in one. Refuses values with whitespace or a bad base64 key.
    [[nodiscard]] static core::result<void> append(const std::string& path, std::string_view host,
                                                   uint16_t port, std::string_view key_type,
                                                   std::string_view key_base64,
                                                   bool hash_host = false);

    // One parsed line; public only so the implementation can share it.
    struct entry {
        enum class marker { none, revoked, cert_authority };
        marker mark = marker::none;
        std::string hosts;     // pattern list, or the |1|salt|hash field
        std::string key_type;  // normalised
        std::string key_blob;  // decoded key
        std::string path;
        std::size_t line = 0;
    };

  private:
    std::vector<entry> entries_;
    std::vector<skipped_line> skipped_;
};

// The host-key name as looked up and written: `host` for port 22,
// `[host]:port` otherwise (lower-cased).
[[nodiscard]] std::string known_hosts_name(std::string_view host, uint16_t port);

// Host key algorithm -> key type: rsa-sha2-256/512 -> ssh-rsa; others unchanged.
[[nodiscard]] std::string normalize_key_type(std::string_view algorithm);

// Key types -> comma-separated libssh host key algorithms, in the given
// order, without duplicates: ssh-rsa -> rsa-sha2-512,rsa-sha2-256;
// ssh-ed25519, ecdsa-sha2-nistp256/384/521, sk-* and others -> themselves.
[[nodiscard]] std::string host_key_algorithms_for_types(const std::vector<std::string>& types);

}  // namespace tunnel::ssh
