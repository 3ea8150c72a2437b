// Sharing (docs/relay.md "Sharing"): a tenant grants another tenant, or a
// visitor-token audience, access to one of its published names, with a role
// and an expiry, until it revokes the grant.
//
//   {"id": "shr_3f9a...", "tenant": "acme", "name": "llm",
//    "to": "tenant:bob" | "audience:partners", "role": "invoke" | "view",
//    "created_at": 1765000000, "expires_at": 1765086400, "created_by": "tenant:acme"}
//
//   invoke  call the name, whatever its visitor access mode would say;
//   view    read the name's stats (GET /v1/shares/stats), never call it.
//
// Pure code: parsing and validation of grant requests (the JSON body of
// POST /v1/shares) and of the relay's state file. share_store.hpp keeps the
// grants; share_api.hpp serves them.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/error.hpp"
#include "core/yaml_config.hpp"
#include "relay/token_verifier.hpp"

namespace tunnel::relay {

enum class share_role { invoke, view };

[[nodiscard]] std::string_view to_string(share_role role) noexcept;  // "invoke", "view"
// Exactly "invoke" or "view"; the message lists them.
[[nodiscard]] core::result<share_role> parse_share_role(std::string_view text);

// Who a grant is for: a tenant (its own tunnel token as Bearer) or an
// audience of visitor tokens (a visitor token whose `aud` lists it).
struct share_grantee {
    enum class kind { tenant, audience };
    kind type = kind::tenant;
    std::string id;  // a label (valid_label)

    [[nodiscard]] std::string to_string() const;  // "tenant:bob", "audience:partners"
    friend bool operator==(const share_grantee&, const share_grantee&) = default;
};

// "tenant:<id>" or "audience:<id>", id a label (lower-cased first).
[[nodiscard]] core::result<share_grantee> parse_share_grantee(std::string_view text);

struct share_grant {
    std::string id;      // "shr_" + 20 lower-case hex digits
    std::string tenant;  // the owner (granting tenant)
    std::string name;    // one of the owner's names
    share_grantee grantee;
    share_role role = share_role::invoke;
    std::chrono::system_clock::time_point created_at;
    std::chrono::system_clock::time_point expires_at;
    std::string created_by;  // "tenant:acme"

    [[nodiscard]] bool live(std::chrono::system_clock::time_point now) const noexcept {
        return now < expires_at;
    }
};

// Limits of sharing (the relay config's `shares:` section).
struct share_limits {
    unsigned max_per_tenant = 100;                              // live grants a tenant may hold
    std::chrono::seconds max_ttl{std::chrono::hours(24 * 30)};  // longest expiry from now
    std::size_t max_body_bytes = 4096;                          // of POST /v1/shares
};

// The relay config's `shares:` section:
//   shares:
//     state_file: /var/lib/tunnel/shares.json   # absent: grants live in memory only
//     max_per_tenant: 100
//     max_ttl: 720h
//     use_audit_interval: 60s   # at most one share_used audit record per grant per interval
struct share_config {
    std::string state_file;
    share_limits limits;
    std::chrono::milliseconds use_audit_interval{std::chrono::seconds(60)};
};

// Reads `node` (the value of `shares:`); problems go to `r` with their path.
void read_share_config(core::yaml_reader& r, const YAML::Node& node, const std::string& path,
                       share_config& out);

// What POST /v1/shares asks for, validated.
struct share_request {
    std::string name;
    share_grantee grantee;
    share_role role = share_role::invoke;
    std::chrono::system_clock::time_point expires_at;
};

// The body of POST /v1/shares:
//   {"name": "llm", "to": "tenant:bob", "role": "invoke", "expires_in": "24h"}
// or "expires_at": <unix seconds> instead of expires_in (exactly one).
// `owner` is the verified token of the granting tenant: the name must be one
// its `allow` globs let it publish, and a tenant cannot grant to itself.
// Unknown keys are errors. Every message says what to write instead.
[[nodiscard]] core::result<share_request> parse_share_request(
    std::string_view body, const tenant_policy& owner, const share_limits& limits,
    std::chrono::system_clock::time_point now);

// "shr_" + 20 random lower-case hex digits (OpenSSL RAND_bytes).
[[nodiscard]] core::result<std::string> new_share_id();
// The shape of a share id ("shr_" + 20 hex digits): for DELETE /v1/shares/ID.
[[nodiscard]] bool valid_share_id(std::string_view id) noexcept;

// The grant as JSON (the API's and the state file's form; times in unix
// seconds plus an ISO 8601 "expires" for people).
[[nodiscard]] nlohmann::json to_json(const share_grant& grant);
// A grant from the state file, every field checked.
[[nodiscard]] core::result<share_grant> share_grant_from_json(const nlohmann::json& j);

// The state file: {"version": 1, "shares": [...]}.
[[nodiscard]] std::string serialize_shares(const std::vector<share_grant>& grants);
[[nodiscard]] core::result<std::vector<share_grant>> parse_shares_file(std::string_view text,
                                                                       std::string_view source);

}  // namespace tunnel::relay
