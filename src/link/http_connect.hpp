// The http_connect transport: an SSH session through an HTTP proxy's CONNECT
// method (a corporate proxy, tinyproxy, squid). The proxy's TCP socket goes
// to libssh as is once the proxy answered 2xx, so there is no pump.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "ssh/byte_stream.hpp"

namespace tunnel::link {

// The CONNECT request for host:port (IPv6 literals in brackets).
[[nodiscard]] std::string connect_request(std::string_view host, uint16_t port);

// Checks a proxy's response head (through the blank line): 2xx is success;
// anything else fails with a message that quotes the status line (sanitised).
[[nodiscard]] core::result<void> check_connect_response(std::string_view head);

// An opener (connect_options::open_stream) that connects to proxy_host:proxy_port
// and asks it to CONNECT to target_host:target_port, all before the deadline.
[[nodiscard]] ssh::stream_opener http_connect_opener(std::string proxy_host, uint16_t proxy_port,
                                                     std::string target_host, uint16_t target_port);

}  // namespace tunnel::link
