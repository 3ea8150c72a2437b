// Resolves and connects a TCP socket with a deadline, the first leg of every
// direct SSH session.
#pragma once

#include <cstdint>
#include <string>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "ssh/session.hpp"

namespace tunnel::ssh {

// Returns a connected, non-blocking, TCP_NODELAY socket fd owned by the caller.
asio::awaitable<core::result<int>> tcp_connect(asio::any_io_executor executor, std::string host,
                                               uint16_t port, time_point deadline);

}  // namespace tunnel::ssh
