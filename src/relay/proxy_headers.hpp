// What the relay changes in the heads it passes between a caller and an
// origin (ARCHITECTURE §5, docs/relay.md "How requests are proxied"). Pure
// functions over parsed heads (http_tracker.hpp), unit-tested in
// tests/unit/relay/proxy_headers_test.cpp:
//
//   framing_problem        refuse (400) a request whose body length is
//                          ambiguous: Transfer-Encoding other than exactly
//                          "chunked", TE with Content-Length, more than one
//                          Content-Length or Host
//   request_for_origin     the request head the origin gets: the target
//                          without the routing prefix, hop-by-hop fields
//                          dropped (RFC 9110 §7.6.1), the forwarding fields
//                          (Forwarded, X-Forwarded-*, X-Real-IP) set by the
//                          relay alone
//   response_for_caller    the response head the caller gets: hop-by-hop
//                          fields dropped, Connection set by the relay; a
//                          101 to an upgrade is passed on whole
//   drop_field             a head without one field (Service-Worker-Allowed
//                          on path-routed responses: tenants share an origin)
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "relay/http_tracker.hpp"

namespace tunnel::relay {

// Why a request's framing is refused (a message for the caller), or nullopt.
[[nodiscard]] std::optional<std::string> framing_problem(const http_head& request);

// True for the fields a proxy never forwards (RFC 9110 §7.6.1): Connection,
// Keep-Alive, Proxy-Connection, TE, Upgrade, Proxy-Authorization,
// Proxy-Authenticate, and every field named in a Connection field of `head`
// (except the framing fields Content-Length and Transfer-Encoding and Host,
// which the relay's own parsing relies on and which are never dropped).
[[nodiscard]] bool is_hop_by_hop(const http_head& head, std::string_view name);

// The caller's address and the scheme it used, for the forwarding fields.
struct forwarding {
    std::string client_ip;  // "192.0.2.7" or "2001:db8::1"
    bool https = false;
};

// RFC 7239 §6 node for an address: an IPv4 address as is, an IPv6 address
// quoted and in brackets ("[2001:db8::1]").
[[nodiscard]] std::string forwarded_node(std::string_view ip);

// The Forwarded value the relay sends: for=NODE;proto=http|https[;host=HOST]
// (HOST quoted when it is not a token, e.g. when it has a port).
[[nodiscard]] std::string forwarded_value(const forwarding& from, const std::string* host);

// The head the origin gets for `request`, with `target` (the request target
// without the /t/<tenant>/<name> prefix). Upgrade and "Connection: upgrade"
// are kept only when the request asks for a switch (http_head::upgrade);
// The origin is always asked to keep its connection open (the tunnel's
// keep-alive pool reuses it, channel_pool.hpp), whatever the caller asked for
// its own: nothing for HTTP/1.1, "Connection: keep-alive" for HTTP/1.0.
[[nodiscard]] std::string request_for_origin(const http_head& request, std::string_view target,
                                             const forwarding& from);

// The head the caller gets for the origin's `response` (status line in the
// relay's own version, HTTP/1.1), with a Connection field of `connection`
// ("close", "keep-alive" for an HTTP/1.0 caller; empty: none). A 101
// (`switching`: the relay goes raw after it) is passed on with all its
// fields.
[[nodiscard]] std::string response_for_caller(const http_head& response,
                                              std::string_view connection, bool switching);

// `head` (a head as the functions above build it: start line, field lines,
// CRLF) without the lines of `field`, compared case-insensitively
// (continuation lines go with their field). The relay drops
// Service-Worker-Allowed from the response heads of path-routed requests:
// every tenant's path-routed service shares one browser origin, and that
// field would let a service worker registered under /t/<tenant>/<name>/ take
// the scope "/", i.e. every tenant's pages (docs/relay.md, "Routing and
// browser origins").
[[nodiscard]] std::string drop_field(std::string_view head, std::string_view field);

}  // namespace tunnel::relay
