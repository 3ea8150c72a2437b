// The manager's side of a pooled SFTP session (docs/link.md, "Pooled
// sessions"): `tunnel cp` and `tunnel sync` in other processes send
// {"cmd":"sftp","link":...,"destination":...} on the control socket; the
// manager opens an `sftp` subsystem channel on the matching link's warm
// session (link/pooled_session.hpp), answers {"ok": true, "link": NAME}, and
// from then on relays the connection's bytes to the channel and back as they
// are, until either side closes. A refusal ({"ok": false, "fallback": true})
// opened nothing: the caller connects itself. The caller does the SFTP; the
// manager never reads it.
#pragma once

#include <memory>
#include <string>

#include "core/asio.hpp"
#include "link/control_request.hpp"
#include "link/manager.hpp"

namespace tunnel::link {

// `leftover`: bytes already read after the request line (SFTP bytes).
asio::awaitable<void> serve_sftp(std::shared_ptr<asio::local::stream_protocol::socket> socket,
                                 std::shared_ptr<manager> m, control_request req,
                                 std::string leftover);

}  // namespace tunnel::link
