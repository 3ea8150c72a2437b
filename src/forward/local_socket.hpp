// Local stream sockets for forwards: TCP (IPv4/IPv6) and Unix-domain behind
// one type, so the pump and listeners do not care which.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "forward/forward_spec.hpp"

namespace tunnel::forward {

using stream_socket = asio::generic::stream_protocol::socket;
using stream_acceptor = asio::basic_socket_acceptor<asio::generic::stream_protocol>;

// Opens listening sockets for `where`: an empty host means loopback
// (127.0.0.1 and ::1 where available), "*" every interface, a Unix path a
// socket file (refused if the path exists). Fails with io_error naming the
// address, e.g. "cannot listen on 127.0.0.1:8080 for -L 8080:db:5432:
// Address already in use".
[[nodiscard]] core::result<std::vector<stream_acceptor>> open_listeners(
    asio::any_io_executor executor, const endpoint& where, const std::string& for_what);

// The port the first listener actually got (for port 0), else 0.
[[nodiscard]] uint16_t listening_port(const std::vector<stream_acceptor>& listeners);

// Connects to a local TCP host:port (resolving names) or Unix path.
[[nodiscard]] asio::awaitable<core::result<stream_socket>> connect_stream(
    asio::any_io_executor executor, endpoint where, std::chrono::milliseconds timeout);

// TCP_NODELAY where it applies (ARCHITECTURE §4); harmless on Unix sockets.
void set_no_delay(stream_socket& socket);

}  // namespace tunnel::forward
