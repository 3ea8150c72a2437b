// Loopback port helpers for tests (STYLE 14: port 0 everywhere, wait on the
// port rather than on sleeps).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "core/error.hpp"

namespace tunnel::test {

// A port on 127.0.0.1 that nothing is bound to now, for a server a test
// starts on it later. Ports come from below the kernel's ephemeral range
// (ip_local_port_range: outgoing connections and bind(:0) draw from that
// range, so a port picked there could become some connection's source port
// before the server binds it), handed out in turn to all test processes
// through a counter file under flock (/tmp/tunnel-test-ports), so two tests
// get the same port only after the whole range went round. Falls back to the
// kernel's choice (bind :0) when the range below is small or the counter file
// cannot be used. Callers that start a server on it still retry on a bind
// failure.
[[nodiscard]] core::result<std::uint16_t> unused_port();

// A TCP socket listening on 127.0.0.1 at a port the kernel chose (backlog
// 16). `extra_type_flags` go to socket() with SOCK_STREAM | SOCK_CLOEXEC
// (SOCK_NONBLOCK, say). fd is -1 when any step failed; the caller closes it.
struct loopback_listener {
    int fd = -1;
    std::uint16_t port = 0;
};
[[nodiscard]] loopback_listener listen_loopback(int extra_type_flags = 0);

// Tries to connect to host:port until it succeeds or timeout passes. Polls
// every few milliseconds; returns whether a connection was accepted.
[[nodiscard]] bool wait_for_port(std::uint16_t port, std::chrono::milliseconds timeout,
                                 const std::string& host = "127.0.0.1");

// One connection attempt to host:port (IPv4 literal). True if accepted.
[[nodiscard]] bool port_accepts(std::uint16_t port, const std::string& host = "127.0.0.1");

// A TCP connection from `source` (a 127.0.0.0/8 address) to 127.0.0.1:port:
// the caller owns the descriptor; -1 on failure.
[[nodiscard]] int connect_from(const std::string& source, std::uint16_t port);

}  // namespace tunnel::test
