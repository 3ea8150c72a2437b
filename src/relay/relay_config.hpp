// The relay's configuration file (STYLE 11): one struct, strictly read from
// YAML (unknown keys are errors, every problem reported with its path), plus
// the permissive dev-mode defaults. docs/relay.md "## Configuration" lists
// every key.
//
//   listen: 0.0.0.0:8443
//   tls: {cert_file: /etc/tunnel/relay.crt, key_file: /etc/tunnel/relay.key}
//   admin_listen: 127.0.0.1:9090
//   domain: relay.example.com
//   routing: host
//   host_key_file: /var/lib/tunnel/relay_host_ed25519
//   audit_log: /var/log/tunnel/audit.jsonl
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
#include "relay/public_route.hpp"
#include "relay/token_verifier.hpp"
#include "relay/visitor_config.hpp"

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

struct relay_config {
    listen_address listen{"0.0.0.0", 8443};
    std::optional<tls_config> tls;  // absent: plain HTTP (loopback or allow_plaintext only)
    bool allow_plaintext = false;
    listen_address admin_listen{"127.0.0.1", 9090};
    std::string domain;  // empty: no host routing
    // Absent: routing_of() decides (host with a domain, path without).
    std::optional<routing_mode> routing;
    std::string host_key_file;  // empty only in dev mode: an ephemeral key
    std::string audit_log;      // empty: no audit log
    jwt_config jwt;
    limits_config limits;
    breaker_config breaker;
    liveness_config liveness;
    shutdown_config shutdown;
    visitor_config visitors;  // visitor access: token key, per-name policies
};

// Parses and validates a whole document; `source` names it in messages.
// All problems are reported at once, one per line, e.g.
//   relay.yaml: limits.tenant_rps: must be a number > 0 and <= 1000000 (line 7)
//   relay.yaml: listen: plain HTTP on 0.0.0.0 is not loopback; set tls or allow_plaintext: true
[[nodiscard]] core::result<relay_config> parse_relay_config(std::string_view yaml_text,
                                                            const std::string& source);
[[nodiscard]] core::result<relay_config> load_relay_config(const std::string& path);

// The routing forms served: `routing` when set, else host when a domain is
// set (each service its own browser origin) and path otherwise (dev).
[[nodiscard]] routing_mode routing_of(const relay_config& config) noexcept;

// Cross-field rules, shared by the parser and dev_config; every problem listed.
[[nodiscard]] std::vector<std::string> validate(const relay_config& config);

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
