// Revoking tokens on a running relay (docs/relay.md "Revoking a token"):
// the admin endpoints POST /api/v1/tokens/revoke and GET
// /api/v1/tokens/revoked over relay_state::revocations, and what a
// revocation does to the tunnels attached with that token (closed at once,
// their names released).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "observe/admin_http.hpp"

namespace tunnel::relay {

class relay_state;
struct tunnel_entry;

// True when `jti` is non-empty and revoked.
[[nodiscard]] bool is_revoked(const relay_state& relay, const std::string& jti);

// Audits and closes `t` ("token revoked"), releasing its names; on t's worker.
void close_revoked(relay_state& relay, tunnel_entry& t);

// Subscribes to relay_state::revocations: each new revocation closes the
// tunnels using that jti, on every worker (posted to each).
void watch_revocations(const std::shared_ptr<relay_state>& state);

[[nodiscard]] std::vector<observe::admin_endpoint> revocation_endpoints(
    const std::shared_ptr<relay_state>& state);

}  // namespace tunnel::relay
