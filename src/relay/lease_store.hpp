// Leases (docs/relay.md "Leases and the request queue"): a tunnel that
// attaches asking for one gets a lease ID, a secret the client keeps across
// its reconnects. Every name the tunnel publishes is held by its lease; when
// the tunnel drops, the lease keeps the names for its grace period, and a
// tunnel attaching with the same ID (the same tenant) gets them back. No
// other tunnel, not even one of the same tenant, can publish them meanwhile;
// after the grace period they are released.
//
// lease_store is the interface a relay keeps its leases behind; the
// in-memory store below serves a single relay, and a shared (Redis) store for
// a cluster implements the same calls. Stores never keep the ID itself: only
// its SHA-256 digest, compared in constant time. Every call is thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace tunnel::relay {

class lease_store {
  public:
    using clock = std::chrono::steady_clock;

    struct grant {
        std::uint64_t lease = 0;  // the store's handle (not secret; 0: no lease)
        std::string id;           // the secret ID to give the client
        std::string route_id;     // lease_route_id(id): how a cluster names it
        bool reclaimed = false;   // the presented ID matched a lease of the tenant
        // The tunnel that held the lease until now, when it has not detached
        // yet (the relay has not noticed the drop): the caller closes it.
        std::uint64_t previous_tunnel = 0;
        std::vector<std::string> names;  // held by the lease (reclaimed)
    };
    // Who holds tenant/name.
    struct holding {
        std::uint64_t lease = 0;      // 0: nobody
        bool attached = false;        // its tunnel is attached
        clock::time_point expires{};  // when detached: the end of its grace
    };
    struct released {
        std::string tenant;
        std::vector<std::string> names;
        std::uint64_t lease = 0;
        std::string route_id;  // lease_route_id of its ID
    };

    virtual ~lease_store() = default;

    // A tunnel of `tenant` attaches. `presented`: the ID the client sent
    // (empty: a new lease). An ID that matches no lease of the tenant (wrong,
    // another tenant's, or expired) gets a new lease too: the caller says so
    // without echoing it, unless `adopt` (in a cluster, where another relay
    // may hold names under this ID's lease): then the lease is taken over
    // here with the presented ID, as reclaimed.
    [[nodiscard]] virtual grant attach(const std::string& tenant, std::string_view presented,
                                       std::uint64_t tunnel, std::chrono::milliseconds grace,
                                       bool adopt = false) = 0;
    // `lease` (0: a tunnel without one) publishes tenant/name: refused while
    // another lease holds the name; the refusal says until when.
    [[nodiscard]] virtual core::result<void> claim(std::uint64_t lease, const std::string& tenant,
                                                   const std::string& name) = 0;
    // The tunnel unpublished the name: released at once.
    virtual void release(std::uint64_t lease, const std::string& tenant,
                         const std::string& name) = 0;
    // `tunnel` detached. Unless another tunnel has taken the lease over,
    // its names are held until now + grace (release or grace 0: released at
    // once, and returned).
    virtual released detach(std::uint64_t lease, std::uint64_t tunnel, bool release) = 0;
    [[nodiscard]] virtual holding held(const std::string& tenant,
                                       const std::string& name) const = 0;
    // Releases the names of leases whose grace ended by `now`.
    [[nodiscard]] virtual std::vector<released> expire(clock::time_point now) = 0;
    [[nodiscard]] virtual std::size_t size() const = 0;
};

// The single relay's store (no Redis).
[[nodiscard]] std::unique_ptr<lease_store> make_memory_lease_store();

// A new lease ID: 32 random bytes, base64url (43 characters).
[[nodiscard]] std::string new_lease_id();
// How relays of a cluster name a lease in Redis and to each other
// (docs/cluster.md "Leases across relays"): "lease/" and 32 hex digits of a
// SHA-256 over the ID's own digest. The same on every relay, so a tunnel can
// take its lease to another one; it gives nothing away about the ID.
[[nodiscard]] std::string lease_route_id(std::string_view id);
// Whether `text` looks like a lease ID (what a client may send): 43 of base64url.
[[nodiscard]] bool valid_lease_id(std::string_view text) noexcept;

}  // namespace tunnel::relay
