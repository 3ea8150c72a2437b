// The relay-to-relay hop's preamble (docs/cluster.md "The proxy hop"): the
// one line a relay sends first on a connection to another relay's
// internal_listen, saying which route the caller asked for and who the
// caller is, signed with the cluster's shared secret:
//
//   TUNNEL-HOP/2 <from-node> <unix-ms> <nonce> <tenant> <name> <client-ip> <proto> <hmac>\r\n
//
// Version 2 asks the receiver to announce when the request starts: it
// writes hop_started_line (cluster_hop.hpp) just before the request's first
// byte enters a tunnel (or goes on over another hop), so the sender knows
// whether a hop that broke without an answer may be tried again. Version 1
// (the same fields; relays before this one send it) gets no announcement.
//
// <nonce> is 16 lowercase hex digits (a 64-bit counter that starts at a
// random value in each process: unique, which is all the replay check
// needs; the HMAC makes it unforgeable), <proto> http or https
// (how the caller reached the sending relay), <hmac> the lowercase hex
// HMAC-SHA256, under the secret file's bytes, of everything before the space
// that precedes it. The receiver checks, in this order: the syntax and sizes
// (at most max_line bytes with the CRLF), the HMAC (constant-time compare),
// the time (within `window` of its clock), the nonce (not seen within the
// window: replay_cache). Pure; unit-tested in
// tests/unit/relay/hop_preamble_test.cpp.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/error.hpp"

struct evp_md_ctx_st;

namespace tunnel::relay {

struct hop_preamble {
    std::string node;  // the sending relay (cluster.node)
    std::int64_t unix_ms = 0;
    std::string nonce;      // 16 lowercase hex digits
    std::string tenant;     // the route the caller asked for
    std::string name;       //
    std::string client_ip;  // the caller, as the sending relay saw it
    bool https = false;     // the caller used TLS to the sending relay
    int version = 2;        // 1 or 2 (the magic): 2 asks for hop_started_line
};

// Nonces seen within the window, bounded: a nonce is remembered until its
// preamble's time plus the window, and a full cache (after dropping the
// expired ones) refuses new nonces rather than forget live ones. Every
// request over a hop has a preamble of its own, so the cache must hold the
// window's worth of hop requests: 1,000,000 nonces (30 s at 33,000 hop
// requests a second), ~60 bytes each (a 64-bit key, its expiry, a heap
// entry), memory taken only as they come. Thread-safe.
class hop_replay_cache {
  public:
    explicit hop_replay_cache(std::size_t capacity = 1'000'000) : capacity_(capacity) {}
    // False when `nonce` was seen (and not yet expired) or the cache is full.
    [[nodiscard]] bool insert(const std::string& nonce, std::int64_t expires_unix_ms,
                              std::int64_t now_unix_ms, bool& full);
    [[nodiscard]] std::size_t size() const;

  private:
    std::size_t capacity_;
    mutable std::mutex mutex_;
    // A nonce's 16 hex digits as a number (other strings: their hash).
    static std::uint64_t key_of(const std::string& nonce);
    std::unordered_map<std::uint64_t, std::int64_t> seen_;  // nonce -> expiry
    // (expiry, nonce), soonest on top: the expired are dropped from here.
    std::priority_queue<std::pair<std::int64_t, std::uint64_t>,
                        std::vector<std::pair<std::int64_t, std::uint64_t>>, std::greater<>>
        by_expiry_;
};

// Holds the cluster secret and nothing else; signs and verifies preambles.
// The secret never leaves it (no accessor; messages never show it or an HMAC).
class hop_signer {
  public:
    static constexpr std::size_t max_line = 512;  // with the CRLF
    static constexpr std::chrono::milliseconds window{30'000};

    explicit hop_signer(std::string_view secret);
    ~hop_signer();
    hop_signer(const hop_signer&) = delete;
    hop_signer& operator=(const hop_signer&) = delete;

    // The whole line, CRLF included. Fields must be valid (a sender builds
    // them from its own checked values); invalid ones fail.
    [[nodiscard]] core::result<std::string> sign(const hop_preamble& p) const;

    // `line` without its CRLF. errc::protocol_error for malformed lines,
    // errc::auth_failed for a wrong HMAC, errc::denied for a stale time or a
    // replayed nonce, errc::resource_exhausted when the replay cache is full.
    [[nodiscard]] core::result<hop_preamble> verify(std::string_view line, std::int64_t now_unix_ms,
                                                    hop_replay_cache& seen) const;

  private:
    // HMAC-SHA256 (RFC 2104) from the two keyed SHA-256 states, computed once
    // from the secret: each MAC copies them (about a fifth of OpenSSL's
    // one-shot HMAC(), which sets up a MAC context per call). Empty if
    // OpenSSL fails.
    [[nodiscard]] std::string mac_hex(std::string_view text) const;
    struct md_ctx_free {
        void operator()(evp_md_ctx_st* c) const noexcept;
    };
    std::unique_ptr<evp_md_ctx_st, md_ctx_free> inner_;  // SHA-256 after (key ^ ipad)
    std::unique_ptr<evp_md_ctx_st, md_ctx_free> outer_;  // SHA-256 after (key ^ opad)
};

// A fresh nonce: the process's counter (started at 8 random bytes), as 16
// lowercase hex digits. Never the same twice in one process; two relays'
// counters would have to start within the window's count of each other.
[[nodiscard]] std::string new_hop_nonce();

// Milliseconds since the Unix epoch, now.
[[nodiscard]] std::int64_t unix_ms_now();

}  // namespace tunnel::relay
