// Mints HS256 relay tokens (`tunnel token`, tests, dev setups): the claims
// token_verifier reads, signed with a shared secret file. Tunnel tokens
// (publishers) and visitor tokens (`tunnel token --visitor`, see
// visitor_token.hpp) are minted by separate functions and never mix.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace tunnel::relay {

struct mint_request {
    std::string secret_file;
    std::string tenant;                // `sub`; lower-cased
    std::vector<std::string> allow;    // name globs; lower-cased
    std::chrono::milliseconds ttl{0};  // `exp` = now + ttl (whole seconds, rounded up)
    std::optional<unsigned> max_streams;
    std::optional<double> rps;
    // `lease_grace`: how long a dropped tunnel keeps its names (whole
    // seconds, 0..24h; shortens the relay's leases.grace).
    std::optional<std::chrono::milliseconds> lease_grace;
    std::optional<std::string> audience;
    std::optional<std::string> issuer;
    std::vector<std::string>
        access;  // `access`: visitor access modes allowed; empty = claim absent
};

struct visitor_mint_request {
    std::string secret_file;           // the relay's visitor secret
    std::string tenant;                // `sub`; lower-cased
    std::vector<std::string> allow;    // `svc`: service-name globs; lower-cased
    std::chrono::milliseconds ttl{0};  // `exp` = now + ttl (whole seconds, rounded up)
    // Audiences (labels, at most 7) a tenant may share names with
    // ("audience:<name>", docs/relay.md "Sharing"): `aud` becomes
    // ["tunnel-visitor", ...].
    std::vector<std::string> audiences{};
};

struct minted_token {
    std::string token;
    std::string tenant;
    std::chrono::system_clock::time_point expires;
    std::string id;                     // `jti`: what `tunnel token --revoke` names
    std::vector<std::string> warnings;  // e.g. the secret file is readable by others
};

// Validates every field (tenant and globs syntax, ttl > 0 and <= 366 days,
// max_streams >= 1, rps > 0, the secret file readable and >= 16 bytes) and
// signs. Every problem is reported at once, one per line, naming the flag.
[[nodiscard]] core::result<minted_token> mint_token(
    const mint_request& request,
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

// A visitor token: typ/aud "tunnel-visitor", sub, svc, iat, exp and a
// random jti. Same checks as mint_token (tenant, globs, ttl, secret file).
[[nodiscard]] core::result<minted_token> mint_visitor_token(
    const visitor_mint_request& request,
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

// Splits "a,b, c" into globs (empty entries dropped).
[[nodiscard]] std::vector<std::string> split_allow_list(std::string_view list);

}  // namespace tunnel::relay
