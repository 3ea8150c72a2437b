// The relay's configuration file (STYLE 11): one struct, strictly read from
// YAML (unknown keys are errors, every problem reported with its path), plus
// the permissive dev-mode defaults. docs/relay.md "## Configuration" lists
// every key.
//
//   listen: 0.0.0.0:8443
//   tls: {cert_file: /etc/tunnel/relay.crt, key_file: /etc/tunnel/relay.key}
//   admin_listen: 127.0.0.1:9090
//   admin: {token_file: /etc/tunnel/admin.token, allowed_hosts: [relay-admin.internal]}
//   domain: relay.example.com
//   routing: host
//   host_key_file: /var/lib/tunnel/relay_host_ed25519
//   audit_log: /var/log/tunnel/audit.jsonl
//   audit: {hmac_key_file: /etc/tunnel/audit.key, max_bytes: 104857600, keep: 10}
//   jwt: {secret_file: /etc/tunnel/jwt.secret, algorithm: HS256, audience: relay}
//   limits: {tenant_rps: 50, route_rps: 20, max_streams_per_tunnel: 64}
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "relay/agent_policy.hpp"
#include "relay/cluster_config.hpp"
#include "relay/lease_config.hpp"
#include "relay/public_route.hpp"
#include "relay/revocation_config.hpp"
#include "relay/share_grant.hpp"
#include "relay/tcp_config.hpp"
#include "relay/token_verifier.hpp"
#include "relay/tracing_config.hpp"
#include "relay/visitor_config.hpp"
#include "usage/usage_config.hpp"

namespace tunnel::relay {

// "host:port", "[v6]:port" or ":port" (all interfaces). Port 0 = any free port.
struct listen_address {
    std::string host;  // without brackets; empty = all interfaces
    std::uint16_t port = 0;

    // 127.0.0.0/8, ::1 or "localhost".
    [[nodiscard]] bool is_loopback() const noexcept;
    [[nodiscard]] std::string to_string() const;  // "[::1]:80", "127.0.0.1:0"
};
[[nodiscard]] core::result<listen_address> parse_listen_address(std::string_view text);

struct tls_config {
    std::string cert_file;  // PEM certificate chain
    std::string key_file;   // PEM private key
};

struct jwt_config {
    // Exactly one key source.
    std::string secret_file;      // HS256 shared secret
    std::string public_key_file;  // RS256/ES256 PEM public key
    std::string jwks_file;        // RS256/ES256 JWKS
    jwt_algorithm algorithm = jwt_algorithm::hs256;
    std::optional<std::string> audience;
    std::optional<std::string> issuer;
    std::chrono::milliseconds leeway{std::chrono::seconds(30)};
};

struct limits_config {
    double tenant_rps = 50;  // default when a token has no `rps` claim
    double tenant_burst = 100;
    double route_rps = 20;
    double route_burst = 40;
    unsigned max_streams_per_tunnel = 64;  // default when a token has no `max_streams`
    std::size_t max_header_bytes = 16 * 1024;
    std::size_t max_body_bytes = 64 * 1024 * 1024;
    std::chrono::milliseconds header_read_timeout{std::chrono::seconds(10)};
    std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};
    // Callers that stall: every write to a caller must make progress within
    // write_timeout; while the relay waits on a caller's body (a request body
    // it sends, a response body it reads) the caller must move min_body_rate
    // bytes/s on average and may fall behind by at most min_body_rate_grace
    // (body_rate.hpp). min_body_rate 0 turns the rate off.
    std::chrono::milliseconds write_timeout{std::chrono::seconds(30)};
    double min_body_rate = 1024;
    std::chrono::milliseconds min_body_rate_grace{std::chrono::seconds(10)};
    // Public connections: in all, per source address (IPv6 by /64), and
    // those that have not sent a complete first request head yet. 0 = auto:
    // max_connections fits under the open-file limit (relay_server::create),
    // max_unauthenticated is half of it.
    unsigned max_connections = 0;
    unsigned max_connections_per_ip = 256;
    unsigned max_unauthenticated = 0;
    // Refused attaches per source address within the window before further
    // attempts are answered 429 without being verified or audited.
    unsigned attach_refusals_per_ip = 10;
    std::chrono::milliseconds attach_refusal_window{std::chrono::seconds(60)};
    // Visitors presenting wrong credentials (a bad password, a forged or
    // expired visitor token) per source address within the window before its
    // further requests to token/basic names are answered 429 unchecked: a cap
    // on password guessing.
    unsigned visitor_failures_per_ip = 10;
    std::chrono::milliseconds visitor_failure_window{std::chrono::seconds(60)};
    // Basic-mode password checks (one libcrypt hash each, 100+ ms) queued at
    // once; past it a visitor gets 503 with Retry-After, not a long wait.
    unsigned max_password_checks = 32;
    // Per tenant, narrowed by the token's max_tunnels / max_names claims.
    unsigned max_tunnels_per_tenant = 16;
    unsigned max_names_per_tenant = 64;
    // Bytes of a tunnel client's data the relay holds for one channel, and
    // for all channels of one tunnel; a client past either ignores the SSH
    // window and its tunnel is closed.
    std::size_t max_channel_buffer_bytes = std::size_t{4} << 20;
    std::size_t max_tunnel_buffer_bytes = std::size_t{256} << 20;
    // The keep-alive pool (channel_pool.hpp): idle channels kept per
    // published name after a clean exchange, and for how long; 0 channels
    // turns the pool off.
    unsigned idle_channels_per_name = 32;
    std::chrono::milliseconds idle_channel_timeout{std::chrono::seconds(30)};
};

struct breaker_config {
    unsigned failures = 5;  // consecutive origin failures that open a tunnel's breaker
    std::chrono::milliseconds cooldown{std::chrono::seconds(10)};
};

struct liveness_config {
    std::chrono::milliseconds ping_interval{std::chrono::seconds(15)};
    std::chrono::milliseconds ping_timeout{std::chrono::seconds(10)};
};

struct shutdown_config {
    std::chrono::milliseconds drain_timeout{std::chrono::seconds(15)};
};

// The admin listener's access rules (admin_listen is the address).
struct admin_config {
    std::string token_file;  // bearer token; required when admin_listen is not loopback
    // Host names the admin listener answers besides IP literals and
    // localhost (DNS-rebinding guard); lower case.
    std::vector<std::string> allowed_hosts;
};

// The audit log's keying and rotation (audit_log is the path).
struct audit_config {
    std::string hmac_key_file;    // empty: unkeyed SHA-256 chain
    std::uint64_t max_bytes = 0;  // rotate past this size; 0: never
    unsigned keep = 10;           // rotated files kept
};

struct relay_config {
    listen_address listen{"0.0.0.0", 8443};
    std::optional<tls_config> tls;  // absent: plain HTTP (loopback or allow_plaintext only)
    bool allow_plaintext = false;
    listen_address admin_listen{"127.0.0.1", 9090};
    // Worker threads, one io_context each (docs/relay.md "Threading model");
    // 0 (`workers: auto`, the default) = the number of cores (resolve_workers).
    unsigned workers = 0;
    admin_config admin;
    std::string domain;  // empty: no host routing
    // Absent: routing_of() decides (host with a domain, path without).
    std::optional<routing_mode> routing;
    std::string host_key_file;  // empty only in dev mode: an ephemeral key
    std::string audit_log;      // empty: no audit log
    audit_config audit;
    jwt_config jwt;
    limits_config limits;
    breaker_config breaker;
    liveness_config liveness;
    shutdown_config shutdown;
    visitor_config visitors;                   // visitor access: token key, per-name policies
    agent_forwarding_config agent_forwarding;  // tenants whose agent requests are accepted
    lease_config leases;                       // how long a dropped tunnel keeps its names
    queue_config queue;                        // requests waiting for a leased name's tunnel
    std::optional<usage::usage_config> usage;  // usage analytics; absent: off
    tracing_config tracing;                    // traceparent and spans (docs/relay.md "Tracing")
    share_config shares;                       // sharing: grants' state file and limits
    tcp_config tcp;                            // raw TCP publishing (tcp_config.hpp)
    std::optional<cluster_config> cluster;     // shared state in Redis; absent: a single relay
    revocation_config revocation;              // where revoked token IDs are kept
};

// Parses and validates a whole document; `source` names it in messages.
// All problems are reported at once, one per line, e.g.
//   relay.yaml: limits.tenant_rps: must be a number > 0 and <= 1000000 (line 7)
//   relay.yaml: listen: plain HTTP on 0.0.0.0 is not loopback; set tls or allow_plaintext: true
[[nodiscard]] core::result<relay_config> parse_relay_config(std::string_view yaml_text,
                                                            const std::string& source);
[[nodiscard]] core::result<relay_config> load_relay_config(const std::string& path);

// The largest `workers:` value.
inline constexpr unsigned max_workers = 256;
// `workers` when set, else the number of cores this process may run on
// (at least 1, at most max_workers).
[[nodiscard]] unsigned resolve_workers(const relay_config& c);

// The routing forms served: `routing` when set, else host when a domain is
// set (each service its own browser origin) and path otherwise (dev).
[[nodiscard]] routing_mode routing_of(const relay_config& config) noexcept;

// Cross-field rules, shared by the parser and dev_config; every problem listed.
[[nodiscard]] std::vector<std::string> validate(const relay_config& config);

// The generous limits of dev mode (`--dev`, `--profile dev`): 1000 rps per
// tenant and route, 256 streams, every client from one address.
void apply_dev_limits(relay_config& config);

// Dev mode: plain HTTP on loopback, HS256 with `secret_file`, an ephemeral
// host key, no audit log, generous limits.
[[nodiscard]] core::result<relay_config> dev_config(std::string_view listen,
                                                    std::string_view admin_listen,
                                                    const std::string& secret_file);

// The effective configuration as "key: value" lines (dev mode prints them at
// start); file paths are shown, secrets never.
[[nodiscard]] std::vector<std::string> describe(const relay_config& config);

// The token_verifier options this config asks for.
[[nodiscard]] verifier_options verifier_options_for(const relay_config& config);

}  // namespace tunnel::relay
