// Revoked tunnel and visitor tokens, by their `jti` (docs/relay.md "Revoking
// a token"). One job: add, check, list, and tell subscribers of each new
// revocation. The relay holds it through this interface so a cluster
// variant (cluster_revocations.hpp: revocations shared by every relay
// through Redis) wraps the local one without touching its callers.
//
// The local list keeps each entry until its token would have expired
// anyway, in SQLite when a state file is configured (it survives a
// restart; expired entries are pruned at open and on every add) or in
// memory. Checks (attach, every request carrying a visitor token) read an
// immutable snapshot through one atomic shared_ptr: no lock on that path.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace tunnel::relay {

struct revoked_token {
    std::string jti;
    std::chrono::system_clock::time_point expires;     // kept until then
    std::chrono::system_clock::time_point revoked_at;  // when it was first revoked
};

// At most this many live revocations (past it add() is refused).
inline constexpr std::size_t max_revocations = 100000;

// A `jti` as the relay accepts it: 1..64 printable ASCII characters without
// spaces (as in tokens: token_verifier.cpp, visitor_token.cpp). Empty when valid, else what is
// wrong.
[[nodiscard]] std::string check_jti(std::string_view jti);

class revocation_list {
  public:
    virtual ~revocation_list() = default;
    using listener = std::function<void(const revoked_token&)>;

    // Revokes `entry.jti` until `entry.expires` (a later expiry of an
    // existing entry extends it). True when the jti was not revoked before.
    // Errors: invalid_argument (a bad jti), resource_exhausted (full),
    // io_error (the state could not be written: the revocation did not
    // happen). Subscribers are called after the revocation is in effect.
    [[nodiscard]] virtual core::result<bool> add(revoked_token entry) = 0;
    // Any thread; no lock.
    [[nodiscard]] virtual bool revoked(std::string_view jti) const = 0;
    // Live entries, oldest revocation first.
    [[nodiscard]] virtual std::vector<revoked_token> list() const = 0;
    // `fn` is called (on the thread that revoked) for every new revocation.
    virtual void subscribe(listener fn) = 0;
    // Empty when a revocation made now reaches every relay it should at
    // once; else why not yet (a cluster whose Redis is away).
    [[nodiscard]] virtual std::string pending_reason() const { return {}; }
};

// The local list: SQLite at `state_file`, or memory when it is empty.
[[nodiscard]] core::result<std::unique_ptr<revocation_list>> open_local_revocation_list(
    const std::string& state_file,
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

}  // namespace tunnel::relay
