// The relay-to-relay proxy hop (docs/cluster.md "The proxy hop"): a public
// request that lands on a relay which does not hold the tunnel of its route
// goes to the relay that does, over a connection to that relay's
// cluster.internal_listen authenticated by a signed preamble
// (hop_preamble.hpp).
//
// Sending (hop_to_owner): the relay read and checked the request head as
// for any request (head limits, framing, route), then connects to the
// owner (2 s), sends the preamble, the head as parsed and the body bytes it
// holds, and from then on pipes the connection both ways, raw: a streamed
// response reaches the caller as the owner sends it, and later requests on
// the connection go to the owner too (one hop connection per public
// connection, bound to the route of the request that opened it).
//
// Receiving (accept_internal): each connection must send a valid preamble
// within 3 s (at most 512 bytes); anything else is refused, logged (never
// the secret or the HMAC), audited (hop_refused) and closed. A good one is
// served as a public connection bound to the preamble's route, with the
// caller's address from the preamble (public_connection.hpp: serve_hop).
// Internal to relay/.
#pragma once

#include <memory>

#include "core/asio.hpp"
#include "relay/cluster_routes.hpp"
#include "relay/http_tracker.hpp"
#include "relay/public_route.hpp"

namespace tunnel::relay {

class relay_state;
struct public_conn;

inline constexpr std::chrono::milliseconds hop_connect_timeout{2'000};
inline constexpr std::chrono::milliseconds hop_preamble_timeout{3'000};
inline constexpr unsigned hop_max_pending = 64;  // internal connections before their preamble
inline constexpr long long hop_retry_after = 5;  // seconds, when the owner is unreachable
// Times one public connection's request may go back to wait for its lease's
// tunnel after hops that could not connect (a relay dying after another).
inline constexpr unsigned max_hop_requeues = 3;

// The request head as the relay parsed it, for the owner to parse again:
// the start line and every field as received (nothing dropped or added:
// the owner rebuilds the head for the origin).
[[nodiscard]] std::string head_for_hop(const http_head& head);

// How a hop ended.
enum class hop_result {
    done,     // the connection is done (the hop ended, or the caller was answered)
    requeue,  // the owner could not be reached and nothing was sent, while a lease
              // holds the name: the request waits for its tunnel again (hold_for_lease)
};

// Proxies `conn` to `owner` from this request on (the request's head was
// read; its body, if any, is what conn holds and what follows). When the
// owner cannot be reached, marks it unreachable (cluster_routes) and returns
// requeue if a lease holds the name; else, and when the owner closes without
// an answer, answers 502 with Retry-After.
asio::awaitable<hop_result> hop_to_owner(std::shared_ptr<relay_state> relay,
                                         std::shared_ptr<public_conn> conn, const http_head& head,
                                         public_route route, cluster_routes::remote_owner owner);

// Accepts on relay->internal_acceptor until it is closed (worker 0).
asio::awaitable<void> accept_internal(std::shared_ptr<relay_state> relay);

}  // namespace tunnel::relay
