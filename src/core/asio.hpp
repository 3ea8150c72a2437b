// The one way to include Asio in this project (ARCHITECTURE §3): Boost 1.74's
// awaitable.hpp needs <utility> (std::exchange) before it under g++ 12 / C++20.
#pragma once

#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace tunnel {
namespace asio = boost::asio;
}  // namespace tunnel
