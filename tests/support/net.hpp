// Loopback port helpers for tests (STYLE 14: port 0 everywhere, wait on the
// port rather than on sleeps).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "core/error.hpp"

namespace tunnel::test {

// Binds a TCP socket to 127.0.0.1:0, reads the port the kernel chose and
// closes the socket. Another process may take the port before it is reused:
// callers that start a server on it must retry on a bind failure.
[[nodiscard]] core::result<std::uint16_t> unused_port();

// Tries to connect to host:port until it succeeds or timeout passes. Polls
// every few milliseconds; returns whether a connection was accepted.
[[nodiscard]] bool wait_for_port(std::uint16_t port, std::chrono::milliseconds timeout,
                                 const std::string& host = "127.0.0.1");

// One connection attempt to host:port (IPv4 literal). True if accepted.
[[nodiscard]] bool port_accepts(std::uint16_t port, const std::string& host = "127.0.0.1");

}  // namespace tunnel::test
