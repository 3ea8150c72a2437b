// The relay side of leases and the request queue (docs/relay.md "Leases and
// the request queue"): a request for a name that a lease holds while it has
// no tunnel waits for it (request_queue.hpp) instead of getting 503, and a
// timer releases the names of leases whose grace period ended. Internal to
// relay/.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/asio.hpp"
#include "relay/http_tracker.hpp"
#include "relay/lease_store.hpp"
#include "relay/relay_config.hpp"
#include "relay/request_queue.hpp"

namespace tunnel::relay {

class relay_state;
struct public_conn;

struct hold_outcome {
    bool answered = false;  // refused (503 with Retry-After) or the caller left: conn is closed
    // The name's turn, when the request waited: kept until the request is
    // marked started (proxy_exchange), so the next one goes after it.
    std::unique_ptr<request_queue::ticket> turn;
};

// Before a request is routed to its tunnel's worker: when its name has no
// live tunnel but a lease holds it (or requests already wait for it), waits
// in the name's queue until its turn, queue.max_wait, the lease's end, the
// caller's hang-up or shutdown. Other requests pass at once. The caller's
// reader must be running while it waits (a hang-up ends the wait):
// `start_reader` is called before it does.
asio::awaitable<hold_outcome> hold_for_lease(std::shared_ptr<relay_state> relay,
                                             std::shared_ptr<public_conn> conn,
                                             const http_head& head,
                                             const std::function<void()>& start_reader);

// A tunnel's lease grace: leases.grace, shortened by the token's
// lease_grace claim (0: no lease).
[[nodiscard]] std::chrono::milliseconds lease_grace_for(const relay_config& config,
                                                        const tenant_policy& policy);

// The lease of an attaching tunnel (`presented`: the ID it sent, empty for
// a new one): logs an ID that matched nothing (never the ID), and closes
// the lease's previous tunnel when the relay has not seen it drop yet.
[[nodiscard]] lease_store::grant attach_lease(relay_state& relay, const std::string& tenant,
                                              const std::string& presented, std::uint64_t tunnel_id,
                                              std::chrono::milliseconds grace,
                                              const std::string& peer);

// "none", "3 new", "3 reclaimed: holds web, api" (for logs and the audit
// log: never the ID).
[[nodiscard]] std::string describe(const lease_store::grant& lease);

// Releases the names of leases whose grace ended (every 250 ms, until
// `timer` is cancelled or the relay stops): their queued requests get 503,
// and each release is logged and audited (`lease_expired`).
asio::awaitable<void> sweep_leases(std::shared_ptr<relay_state> relay,
                                   std::shared_ptr<asio::steady_timer> timer);

}  // namespace tunnel::relay
