// A byte stream through an HTTP proxy's CONNECT method (a corporate proxy,
// tinyproxy, squid), used by the link manager's http_connect transport. The
// proxy's TCP socket goes to libssh as is once the proxy answered 2xx, so
// there is no pump. A proxy that wants credentials gets
// `Proxy-Authorization: Basic` from a file or an environment variable, read
// at each connection and never put in a message.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "ssh/byte_stream.hpp"

namespace tunnel::transport {

// Where the proxy's "user:password" comes from: a file, or an environment
// variable (by name); at most one is set, neither means none is sent.
struct proxy_credentials_source {
    std::string file;
    std::string env;
};

// What messages call the source ("proxy_credentials_file /path",
// "environment variable NAME"); empty when none is configured.
[[nodiscard]] std::string describe(const proxy_credentials_source& source);

// Reads "user:password" (trailing whitespace trimmed; a non-empty user, no
// control characters, at most 1 KiB). An empty string when no source is set.
[[nodiscard]] core::result<std::string> read_proxy_credentials(
    const proxy_credentials_source& source);

// The CONNECT request for host:port (IPv6 literals in brackets), with
// `Proxy-Authorization: Basic` when `credentials` ("user:password") is not empty.
[[nodiscard]] std::string connect_request(std::string_view host, uint16_t port,
                                          std::string_view credentials = {});

// Checks a proxy's response head (through the blank line): 2xx is success;
// anything else fails with a message that quotes the status line (sanitised).
// `credentials_from`: describe() of the source whose credentials were sent
// (empty: none were), so a 407 says what is missing or was refused.
[[nodiscard]] core::result<void> check_connect_response(std::string_view head,
                                                        std::string_view credentials_from = {});

// An opener (connect_options::open_stream) that connects to proxy_host:proxy_port
// and asks it to CONNECT to target_host:target_port, all before the deadline.
[[nodiscard]] ssh::stream_opener http_connect_opener(std::string proxy_host, uint16_t proxy_port,
                                                     std::string target_host, uint16_t target_port,
                                                     proxy_credentials_source credentials = {});

}  // namespace tunnel::transport
