// Password lists for the `basic` visitor access mode: htpasswd-style lines
// `user:hash`, verified with libcrypt (crypt_rn). Only yescrypt (`$y$`) and
// bcrypt (`$2b$`, `$2y$`) hashes are accepted; plain text, DES, MD5
// (`$1$`, Apache's `$apr1$`), SHA-1 and SHA-crypt are refused when the list
// is read, with a message saying how to make a good hash:
//
//   mkpasswd -m yescrypt           (Debian package whois)
//   htpasswd -nB alice             (Debian package apache2-utils)
//
// Hash costs are bounded (bcrypt cost <= 10, yescrypt <= 32 MiB and no extra
// lanes), because every visitor request with a wrong password costs the relay
// one hash: a list must not be able to make that arbitrarily expensive. A
// password_cache remembers recent successes so a browser sending the same
// credentials with every request costs one hash per few minutes, not one per
// request. Never logs or echoes a hash or a password.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/error.hpp"

namespace tunnel::relay {

struct htpasswd_entry {
    std::string user;
    std::string hash;
    friend bool operator==(const htpasswd_entry&, const htpasswd_entry&) = default;
};

// 1..64 characters of A-Z, a-z, 0-9, '.', '_', '@', '+', '-'.
[[nodiscard]] core::result<void> check_user_name(std::string_view user);
// A yescrypt or bcrypt hash of bounded cost, well-formed; the message says
// what the hash is (never the hash itself) and how to make a good one.
[[nodiscard]] core::result<void> check_password_hash(std::string_view hash);

class htpasswd {
  public:
    static constexpr std::size_t max_users = 10000;
    static constexpr std::size_t max_password_bytes = 1024;

    // Lines `user:hash`; blank lines and lines starting with '#' are skipped,
    // a trailing '\r' is ignored. Every problem is reported at once as
    // "<source>:<line>: ...". Duplicate users are an error.
    [[nodiscard]] static core::result<htpasswd> parse(std::string_view text,
                                                      std::string_view source);
    // Reads and parses a file (config load time; the only I/O here).
    [[nodiscard]] static core::result<htpasswd> load(const std::string& path);
    // Checks entries given one by one (e.g. from a publish request).
    [[nodiscard]] static core::result<htpasswd> from_entries(std::vector<htpasswd_entry> entries,
                                                             std::string_view source);

    htpasswd() = default;
    [[nodiscard]] const std::vector<htpasswd_entry>& entries() const noexcept { return entries_; }
    [[nodiscard]] const htpasswd_entry* find(std::string_view user) const noexcept;

    // True when `password` is `user`'s (crypt_rn, constant-time compare of
    // the result). An unknown user costs one hash as well, so timing does not
    // tell which users exist. Passwords with NUL bytes or longer than
    // max_password_bytes never match.
    [[nodiscard]] bool verify(std::string_view user, std::string_view password) const;

    friend bool operator==(const htpasswd&, const htpasswd&) = default;

  private:
    std::vector<htpasswd_entry> entries_;
};

// Recently verified (user, password, hash) triples, keyed by an HMAC under a
// random per-process key (the cache never holds a password). Bounded: the
// oldest entry goes first. Thread-safe.
class password_cache {
  public:
    explicit password_cache(std::size_t capacity = 1024,
                            std::chrono::seconds ttl = std::chrono::minutes(5));

    // list.verify(user, password), skipped when the same triple was verified
    // less than `ttl` before `now`. Only successes are remembered.
    [[nodiscard]] bool verify(const htpasswd& list, std::string_view user,
                              std::string_view password, std::chrono::system_clock::time_point now);

    [[nodiscard]] std::size_t size() const;
    // How many verifications ran libcrypt (for tests and metrics).
    [[nodiscard]] std::size_t hashes_computed() const;

  private:
    std::string key_;
    std::size_t capacity_;
    std::chrono::seconds ttl_;
    mutable std::mutex mutex_;
    std::unordered_map<std::string, std::chrono::system_clock::time_point> verified_;
    std::deque<std::string> order_;
    std::size_t computed_ = 0;
};

}  // namespace tunnel::relay
