// One request over the proxy hop, on the relay that got it (docs/cluster.md
// "The proxy hop"): the relay read and checked the request head as for any
// request (head limits, framing, route); the request goes to the relay
// holding its route's tunnel (the owner) on a hop connection, an idle one
// from the worker's pool (hop_pool.hpp) or a new one, after a preamble that
// binds the connection to this request's route and caller. The request body
// goes as its framing delimits it (nothing after it: the caller's next
// request is routed afresh), the response comes back to the caller as the
// owner sends it (a streamed response stays streamed) while its framing is
// watched: a response that ends cleanly and keeps the connection puts the
// hop connection back in the pool. Internal to relay/.
#pragma once

#include <memory>
#include <string>

#include "core/asio.hpp"
#include "relay/cluster_routes.hpp"
#include "relay/http_tracker.hpp"
#include "relay/public_route.hpp"

namespace tunnel::relay {

class relay_state;
struct public_conn;

// How a hop ended.
enum class hop_result {
    next,     // the response reached the caller and the connection stays open
    done,     // the connection is done (closed: the caller was answered, or is gone)
    requeue,  // the owner could not be reached and nothing was sent, while a lease
              // holds the name: the request waits for its tunnel again (hold_for_lease)
};

// The request head as sent over the hop: head_for_hop's, but without the
// "close" option of Connection (the hop connection outlives the caller's;
// the caller is told the connection closes by this relay).
[[nodiscard]] std::string head_for_pooled_hop(const http_head& head);

// Sends the request (`head` read by `request`, which delimits its body in
// what conn holds and what follows) to `owner` and its response to the
// caller. When no hop connection can be made, marks the owner unreachable
// (cluster_routes) and returns requeue if a lease holds the name; else, and
// when a new hop connection closes without an answer, answers 502 with
// Retry-After. A pooled connection that closes without an answer is
// replaced by a new one once, for a request that may be sent again
// (RFC 9110 9.2.2: idempotent, no body).
asio::awaitable<hop_result> hop_to_owner(std::shared_ptr<relay_state> relay,
                                         std::shared_ptr<public_conn> conn, http_tracker& request,
                                         const http_head& head, public_route route,
                                         cluster_routes::remote_owner owner);

}  // namespace tunnel::relay
