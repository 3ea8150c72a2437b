// The relay's admin endpoints (STYLE 13): a table served by the one admin
// HTTP server, observe::admin_http_server, on admin_listen. Access: the
// bearer token in admin.token_file (required off loopback) and the Host
// check (IP literals, localhost, admin.allowed_hosts); /healthz and /readyz
// need no token. docs/relay.md "## Endpoints" lists the table.
#pragma once

#include <memory>
#include <vector>

#include "core/error.hpp"
#include "observe/admin_http.hpp"

namespace tunnel::relay {

class relay_state;

// The endpoint table; handlers hold the state weakly (503 once it is gone).
[[nodiscard]] std::vector<observe::admin_endpoint> admin_endpoints(
    const std::shared_ptr<relay_state>& state);

// Reads admin.token_file and builds state->admin_server on
// state->admin_acceptor (which it takes). Nothing is accepted until
// start_admin().
[[nodiscard]] core::result<void> create_admin(const std::shared_ptr<relay_state>& state);

void start_admin(const std::shared_ptr<relay_state>& state);

}  // namespace tunnel::relay
