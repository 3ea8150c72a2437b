// Carrying raw TCP connections (docs/relay.md "Raw TCP"): the checks a
// connection for a published raw TCP name passes (the ones HTTP requests
// pass, admission.hpp), the forwarded-tcpip channel to its tunnel, and the
// splice between them. Internal to relay/ (tcp_service.cpp).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/asio.hpp"
#include "relay/connection_gate.hpp"

namespace tunnel::relay {

class relay_state;

// Logs and audits a refused raw TCP connection (`tcp_refused`).
void audit_tcp_refusal(relay_state& relay, const std::string& tenant, const std::string& name,
                       const std::string& peer, std::string_view via, std::string_view code,
                       const std::string& reason);

// Serves a connection accepted for tenant/name (`via`: "port" or "sni") on
// the worker of the tunnel that publishes it: moved there first when that
// is not `worker` (the one running the caller). Refusals close it (after a
// TLS alert for "sni").
void carry_tcp(const std::shared_ptr<relay_state>& relay, unsigned worker,
               asio::ip::tcp::socket sock, asio::ip::tcp::endpoint peer, std::string tenant,
               std::string name, std::string via, connection_gate::ticket ticket);

}  // namespace tunnel::relay
