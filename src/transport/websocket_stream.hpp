// SSH over a WebSocket: an ssh::stream_opener (connect_options::open_stream)
// that connects a websocket_client and pumps it to one end of a socketpair
// whose other end the libssh session uses.
//
//   opts.open_stream = transport::websocket_opener(*url, ws_options, [](const ws_attach_info& a) {
//   ... }); auto s = co_await ssh::session::connect(executor, opts);
#pragma once

#include <functional>

#include "ssh/byte_stream.hpp"
#include "transport/websocket_client.hpp"

namespace tunnel::transport {

// on_attach runs after each successful upgrade, with the relay's 101 headers.
[[nodiscard]] ssh::stream_opener websocket_opener(
    ws_url url, ws_options options, std::function<void(const ws_attach_info&)> on_attach = {});

}  // namespace tunnel::transport
