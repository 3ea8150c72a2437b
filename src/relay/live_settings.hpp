// The part of the relay's configuration that a reload (SIGHUP,
// config_reload.hpp) may change while it runs: the whole config as last
// loaded, and the token verifiers built from it. Immutable once published;
// readers take it through relay_state::live() (one atomic shared_ptr load,
// no lock) and keep their copy for the request they serve, so a request
// sees one version from its start to its end.
#pragma once

#include <optional>

#include "relay/relay_config.hpp"
#include "relay/token_verifier.hpp"

namespace tunnel::relay {

struct live_settings {
    relay_config config;
    token_verifier verifier;                       // jwt: tunnel tokens
    std::optional<token_verifier> visitor_tokens;  // visitors.secret_file: visitor tokens
    unsigned version = 1;                          // 1 at start, +1 per applied reload
};

}  // namespace tunnel::relay
