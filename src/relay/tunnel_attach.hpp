// Tunnel attaches (ARCHITECTURE §5): `GET /v1/tunnel` with a Bearer JWT is
// verified, upgraded to a WebSocket (101) that carries the client's SSH
// session to an ssh::server_session, and registered in relay_state as a
// tunnel_entry whose forwards publish names. Internal to relay/.
#pragma once

#include <memory>

#include "core/asio.hpp"
#include "relay/http_tracker.hpp"

namespace tunnel::relay {

class relay_state;
struct public_conn;

// Serves the rest of `conn` as a tunnel when `head` (its first request) is an
// acceptable attach; otherwise answers 401/426/503 and closes it.
asio::awaitable<void> attach(std::shared_ptr<relay_state> relay, std::shared_ptr<public_conn> conn,
                             http_head head);

}  // namespace tunnel::relay
