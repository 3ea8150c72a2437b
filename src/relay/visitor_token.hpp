// Visitor tokens (the `token` access mode): HS256 JWTs the relay's operator
// mints with `tunnel token --visitor`, naming the tenant and the services a
// visitor may call, with an expiry:
//
//   {"typ": "tunnel-visitor", "aud": "tunnel-visitor", "sub": "acme",
//    "svc": ["llm"], "iat": 1700000000, "exp": 1700003600, "jti": "k3Jq..."}
//
// A visitor token never attaches a tunnel (map_claims refuses `typ`
// "tunnel-visitor") and a tunnel token is never a visitor token (it has no
// such `typ`, no `aud` "tunnel-visitor" and no `svc`). Verification reuses
// token_verifier (libjwt, the algorithm pinned to HS256); only the claims
// mapping is here, pure and fuzzed (tests/fuzz/visitor_request_fuzz).
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "relay/token_verifier.hpp"

namespace tunnel::relay {

inline constexpr std::string_view visitor_token_type = "tunnel-visitor";

// What a verified visitor token grants.
struct visitor_grant {
    std::string tenant;                             // `sub`
    std::vector<std::string> services;              // `svc`: service-name globs
    std::string id;                                 // `jti` (for audit lines; may be empty)
    std::chrono::system_clock::time_point expires;  // `exp`
    // `aud` besides "tunnel-visitor" (an array form): audiences a tenant may
    // share a name with (share_grant.hpp, "audience:<name>").
    std::vector<std::string> audiences{};
};

// True when the grant is for `tenant` and one of its globs matches `name`.
[[nodiscard]] bool grants(const visitor_grant& grant, std::string_view tenant,
                          std::string_view name) noexcept;

// Claims -> grant: `typ` must be "tunnel-visitor" and `aud` be it, or an
// array of at most 8 that holds it plus audience labels; `exp` required
// (with `leeway`), `nbf`/`iat` checked when present; `sub` a tenant label;
// `svc` 1..64 name globs; `jti` optional (<= 64 printable characters).
[[nodiscard]] token_result<visitor_grant> map_visitor_claims(
    std::string_view claims_json, std::chrono::seconds leeway,
    std::chrono::system_clock::time_point now);

// The verifier options for visitor tokens: HS256 with the secret in
// `secret_file` (the relay's visitor secret; see docs/relay.md).
[[nodiscard]] verifier_options visitor_verifier_options(std::string secret_file,
                                                        std::chrono::seconds leeway);

// Signature and algorithm through `verifier` (loaded from
// visitor_verifier_options), then map_visitor_claims.
[[nodiscard]] token_result<visitor_grant> verify_visitor_token(
    const token_verifier& verifier, std::string_view token,
    std::chrono::system_clock::time_point now);

}  // namespace tunnel::relay
