// Proxying one public request over a forwarded-tcpip channel of the tunnel
// that publishes its route (ARCHITECTURE §5): the heads rebuilt both ways
// (proxy_headers.hpp), the body and the response pumped raw as they arrive,
// a raw pipe only after the origin's 101 to a real upgrade, keep-alive reuse
// of the channel, the breaker told only about the origin's side
// (exchange_outcome.hpp), the request's metrics. Internal to relay/.
#pragma once

#include <memory>

#include "core/asio.hpp"
#include "relay/http_tracker.hpp"
#include "relay/request_trace.hpp"

namespace tunnel::relay {

class relay_state;
struct public_conn;

// One request on a public connection, after its head was read by `request`
// (which then delimits the body). Answers errors itself (JSON, connection
// closed). Returns whether the connection may carry another request.
// `trace`: the request's trace when tracing is on (its spans are recorded
// when the request ends; the origin gets its traceparent), else null.
asio::awaitable<bool> proxy_exchange(std::shared_ptr<relay_state> relay,
                                     std::shared_ptr<public_conn> conn, http_tracker request,
                                     http_head head, std::unique_ptr<request_trace> trace);

}  // namespace tunnel::relay
