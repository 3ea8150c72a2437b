// Public keys for RS256/ES256 tokens (jwt_keys.cpp). jwks_to_pem is declared
// in token_verifier.hpp, next to the key_entry it returns.
#pragma once

#include <optional>
#include <string>

#include "relay/token_verifier.hpp"

namespace tunnel::relay {

// Checks that `pem` is a public key usable with `alg`; returns a message
// saying what is wrong (and how to fix it) when not.
[[nodiscard]] std::optional<std::string> check_public_pem(const std::string& pem,
                                                          jwt_algorithm alg);

}  // namespace tunnel::relay
