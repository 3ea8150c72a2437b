// The relay-to-relay proxy hop (docs/cluster.md "The proxy hop"): a public
// request that lands on a relay which does not hold the tunnel of its route
// goes to the relay that does, over a connection to that relay's
// cluster.internal_listen authenticated by a signed preamble
// (hop_preamble.hpp).
//
// Sending: hop_exchange.hpp (one request per preamble; the connections are
// pooled between requests: hop_pool.hpp).
//
// Receiving (accept_internal): each connection must send a valid preamble
// within 3 s (at most 512 bytes); anything else is refused, logged (never
// the secret or the HMAC), audited (hop_refused) and closed. A good one is
// served as a public connection bound to the preamble's route, with the
// caller's address from the preamble (public_connection.hpp: serve_hop).
// After each response on it, the next request must come with a preamble of
// its own (next_hop_preamble), checked exactly as the first: it binds the
// connection to that request's route and caller.
// Internal to relay/.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "core/asio.hpp"
#include "relay/connection_gate.hpp"
#include "relay/http_tracker.hpp"

namespace tunnel::relay {

class relay_state;
struct public_conn;

inline constexpr std::chrono::milliseconds hop_preamble_timeout{3'000};
inline constexpr unsigned hop_max_pending = 64;  // internal connections before their preamble
// How long the owner waits for the next request's preamble on a hop
// connection (longer than the sender keeps it idle: hop_pool_idle_timeout).
inline constexpr std::chrono::milliseconds hop_next_preamble_timeout{60'000};
inline constexpr long long hop_retry_after = 5;  // seconds, when the owner is unreachable
// Times one public connection's request may go back to wait for its lease's
// tunnel after hops that could not connect (a relay dying after another).
inline constexpr unsigned max_hop_requeues = 3;

// What the receiver of a TUNNEL-HOP/2 preamble writes, once per request,
// just before the request's first byte enters a tunnel or goes on over
// another hop: the sender may send a request again only while it has not
// seen this line (hop_exchange.hpp). Never part of the HTTP response.
inline constexpr std::string_view hop_started_line = "TUNNEL-HOP/2 started\r\n";

// What the receiver of a TUNNEL-HOP/2 preamble writes before its 503 when
// the preamble's route has no tunnel (nor lease) there: the sender's mirror
// of the route table is stale. The request never started.
inline constexpr std::string_view hop_not_attached_line = "TUNNEL-HOP/2 not-attached\r\n";

// The line a TUNNEL-HOP/2 receiver may write before its answer, as the
// sender reads the start of what came back: `size` bytes of it to strip
// (incomplete: the bytes so far are the start of one; read more).
struct hop_lead {
    enum kind_t { none, started, not_attached, incomplete } kind = none;
    std::size_t size = 0;
};
[[nodiscard]] hop_lead read_hop_lead(std::string_view in);

// On a hop connection whose sender asked for it (conn.hop->announce), and
// once per request: writes hop_started_line. False when the sender is gone
// (the request must not start); true otherwise, and on other connections.
asio::awaitable<bool> announce_start(public_conn& conn);

// The request head as the relay parsed it, for the owner to parse again:
// the start line and every field as received (nothing dropped or added:
// the owner rebuilds the head for the origin).
[[nodiscard]] std::string head_for_hop(const http_head& head);

// Serving a hop connection (conn->hop set), between two requests: waits
// for the next preamble (up to hop_next_preamble_timeout for its first
// byte, then hop_preamble_timeout for the line), verifies it as the first
// (HMAC, time, nonce), checks the route is held here and admits the caller
// it names (`ticket` is replaced by the new caller's), then binds `conn` to
// it. False when the connection is done: it closed, idled out, or was
// refused (logged, counted, audited; closed without a byte, or answered 503
// for a route not held here or a caller over its caps).
asio::awaitable<bool> next_hop_preamble(std::shared_ptr<relay_state> relay,
                                        std::shared_ptr<public_conn> conn,
                                        connection_gate::ticket& ticket);

// Accepts on relay->internal_acceptor until it is closed (worker 0).
asio::awaitable<void> accept_internal(std::shared_ptr<relay_state> relay);

}  // namespace tunnel::relay
