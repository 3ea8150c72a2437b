// Sharing on the public listener (docs/relay.md "Sharing"): the API a tenant
// manages its grants with, authenticated with its own tunnel token (the one
// `tunnel connect` uses) as `Authorization: Bearer`, and the check that lets
// a grantee call a shared name.
//
//   POST   /v1/shares             {"name", "to", "role", "expires_in"|"expires_at"} -> 201 grant
//   GET    /v1/shares             -> 200 {"shares": [...]}: the caller's own live grants
//   DELETE /v1/shares/<id>        -> 200 {"revoked": grant}; 404 unless the caller owns it
//   GET    /v1/shares/stats?tenant=T&name=N
//                                 -> 200 the name's stats, for its owner or a `view` grantee
//                                    (tenant token, or a visitor token of the audience)
//
// Every answer is JSON and closes the connection. Requests on a name's own
// host (name--tenant.domain) are the name's, never the API's. Wrong tokens
// count toward limits.visitor_failures_per_ip like wrong visitor credentials.
// Internal to relay/.
#pragma once

#include <memory>
#include <optional>

#include "core/asio.hpp"
#include "relay/http_tracker.hpp"
#include "relay/public_route.hpp"
#include "relay/visitor_access.hpp"

namespace tunnel::relay {

class relay_state;
struct public_conn;
struct relay_config;

// The request is for the share API: its path is /v1/shares or below it, and
// its Host is not a name's own host.
[[nodiscard]] bool is_share_api(const relay_config& config, const http_head& head);

// Serves one API request (reading its body, at most shares.max_body_bytes)
// and closes the connection. Returns false (no next request).
asio::awaitable<bool> serve_share_api(std::shared_ptr<relay_state> relay,
                                      std::shared_ptr<public_conn> conn, const http_head& head);

// For a request its name's access mode refused: when the name has a live
// `invoke` grant and the caller's `Authorization: Bearer` token is a tunnel
// token of a granted tenant or a visitor token of a granted audience, an
// `allow` decision (credential bearer: stripped before the origin), the use
// counted and audited (sampled: share_store::note_use). nullopt otherwise.
[[nodiscard]] std::optional<visitor_decision> admit_by_share(relay_state& relay,
                                                             const public_conn& conn,
                                                             const public_route& route,
                                                             const http_head& head);

}  // namespace tunnel::relay
