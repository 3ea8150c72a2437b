// The one way to include Beast in this project (ARCHITECTURE §3): through
// core/asio.hpp first (the g++ 12 <utility> trap), and only from the few .cpp
// files that instantiate Beast templates (each costs ~30 s to compile).
#pragma once

#include "core/asio.hpp"

#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

namespace tunnel {
namespace beast = boost::beast;
}  // namespace tunnel
