// Raw TCP publishing on the relay (docs/relay.md "Raw TCP"): a tunnel
// publishes NAME with the bind address "NAME;proto=tcp" (port 0); the relay
// assigns it a public port from tcp.ports (tcp_routes.hpp), answers the
// tcpip-forward with that port, listens on it, and splices each accepted
// connection to a forwarded-tcpip channel of the tunnel. With tcp.sni_domain,
// TLS on the public port whose ClientHello names
// <name>--<tenant>.<sni_domain> is spliced the same way without being
// terminated (client_hello.hpp). Both go through the token's allow list,
// the tenant's rate buckets, the tunnel's stream cap, the tenant's
// connection cap (tcp.max_connections_per_tenant) and the public connection
// caps, and every refusal is logged and audited (`tcp_refused`). Internal
// to relay/.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/asio.hpp"
#include "observe/admin_http.hpp"
#include "relay/connection_gate.hpp"
#include "ssh/server_session.hpp"

namespace tunnel::relay {

class relay_state;
struct tunnel_entry;

// The bind address suffix of a raw TCP publish.
inline constexpr std::string_view tcp_publish_suffix = ";proto=tcp";

// Whether a tcpip-forward's bind address asks for a raw TCP name.
[[nodiscard]] bool is_tcp_publish(std::string_view address) noexcept;
// The bind address `tunnel connect --expose-tcp NAME=...` sends.
[[nodiscard]] std::string encode_tcp_publish(std::string_view name);

// A tunnel's tcpip-forward for "NAME;proto=tcp" (on the tunnel's worker):
// checks, assigns a port, listens, logs and audits.
[[nodiscard]] ssh::forward_decision publish_tcp(const std::shared_ptr<relay_state>& relay,
                                                const std::shared_ptr<tunnel_entry>& t,
                                                const std::string& address, std::uint32_t port);
// Its cancel: the port is released at once (unpublished on purpose).
void unpublish_tcp(relay_state& relay, const tunnel_entry& t, const std::string& address);
// The tunnel detached (relay_state::remove, on its worker): its listeners
// close; its ports stay assigned while its lease holds the names.
void tcp_tunnel_gone(relay_state& relay, const tunnel_entry& t);

// Before a public connection is served as HTTP (on worker `worker`): with
// tcp.sni_domain set, peeks at its first bytes; a TLS ClientHello naming a
// raw TCP name is spliced to its tunnel, a malformed, slow or unroutable
// one refused. Returns true when it took the connection (the caller is
// done), false to serve it as before (nothing was consumed).
asio::awaitable<bool> route_tls_by_sni(std::shared_ptr<relay_state> relay, unsigned worker,
                                       asio::ip::tcp::socket& sock,
                                       const asio::ip::tcp::endpoint& peer,
                                       connection_gate::ticket& ticket);

// /api/v1/tcp: assigned ports and SNI names (JSON).
[[nodiscard]] std::vector<observe::admin_endpoint> tcp_endpoints(
    const std::shared_ptr<relay_state>& state);

}  // namespace tunnel::relay
