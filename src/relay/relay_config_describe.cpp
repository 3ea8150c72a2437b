// describe(): the effective relay configuration as "key: value" lines, for
// `tunnel relay --dev` at start and `--check-config`. Paths are shown,
// secrets never.
#include <fmt/format.h>

#include "core/duration.hpp"
#include "relay/relay_config.hpp"

namespace tunnel::relay {

std::vector<std::string> describe(const relay_config& c) {
    using core::format_duration;
    std::vector<std::string> out;
    auto or_none = [](const std::string& s) { return s.empty() ? std::string("(none)") : s; };
    out.push_back(
        fmt::format("listen: {} ({})", c.listen.to_string(), c.tls ? "TLS" : "plain HTTP"));
    if (c.tls) {
        out.push_back(fmt::format("tls.cert_file: {}", c.tls->cert_file));
        out.push_back(fmt::format("tls.key_file: {}", c.tls->key_file));
    }
    out.push_back(fmt::format("allow_plaintext: {}", c.allow_plaintext));
    out.push_back(fmt::format("admin_listen: {}", c.admin_listen.to_string()));
    out.push_back(c.workers ? fmt::format("workers: {}", c.workers)
                            : fmt::format("workers: {} (one per core)", resolve_workers(c)));
    out.push_back(fmt::format("admin.token_file: {}", c.admin.token_file.empty()
                                                          ? "(none: no token needed on loopback)"
                                                          : c.admin.token_file));
    out.push_back(fmt::format("admin.allowed_hosts: {}",
                              c.admin.allowed_hosts.empty()
                                  ? std::string("(IP addresses and localhost only)")
                                  : fmt::format("{}", fmt::join(c.admin.allowed_hosts, ", "))));
    out.push_back(
        fmt::format("domain: {}", c.domain.empty() ? "(none: path routing only)" : c.domain));
    out.push_back(fmt::format("routing: {}{}", to_string(routing_of(c)),
                              c.routing          ? ""
                              : c.domain.empty() ? " (default without a domain)"
                                                 : " (default with a domain)"));
    out.push_back(fmt::format("host_key_file: {}",
                              c.host_key_file.empty() ? "(ephemeral key)" : c.host_key_file));
    out.push_back(fmt::format("audit_log: {}", or_none(c.audit_log)));
    if (!c.audit_log.empty()) {
        out.push_back(fmt::format("audit.hmac_key_file: {}", c.audit.hmac_key_file.empty()
                                                                 ? "(none: unkeyed SHA-256 chain)"
                                                                 : c.audit.hmac_key_file));
        out.push_back(fmt::format("audit.max_bytes: {}", c.audit.max_bytes == 0
                                                             ? std::string("0 (no rotation)")
                                                             : std::to_string(c.audit.max_bytes)));
        out.push_back(fmt::format("audit.keep: {}", c.audit.keep));
    }
    if (!c.jwt.secret_file.empty())
        out.push_back(fmt::format("jwt.secret_file: {}", c.jwt.secret_file));
    if (!c.jwt.public_key_file.empty())
        out.push_back(fmt::format("jwt.public_key_file: {}", c.jwt.public_key_file));
    if (!c.jwt.jwks_file.empty()) out.push_back(fmt::format("jwt.jwks_file: {}", c.jwt.jwks_file));
    out.push_back(fmt::format("jwt.algorithm: {}", to_string(c.jwt.algorithm)));
    out.push_back(
        fmt::format("jwt.audience: {}", c.jwt.audience ? *c.jwt.audience : "(not checked)"));
    out.push_back(fmt::format("jwt.issuer: {}", c.jwt.issuer ? *c.jwt.issuer : "(not checked)"));
    out.push_back(fmt::format("jwt.leeway: {}", format_duration(c.jwt.leeway)));
    out.push_back(fmt::format("limits.tenant_rps: {}", c.limits.tenant_rps));
    out.push_back(fmt::format("limits.tenant_burst: {}", c.limits.tenant_burst));
    out.push_back(fmt::format("limits.route_rps: {}", c.limits.route_rps));
    out.push_back(fmt::format("limits.route_burst: {}", c.limits.route_burst));
    out.push_back(
        fmt::format("limits.max_streams_per_tunnel: {}", c.limits.max_streams_per_tunnel));
    out.push_back(fmt::format("limits.max_header_bytes: {}", c.limits.max_header_bytes));
    out.push_back(fmt::format("limits.max_body_bytes: {}", c.limits.max_body_bytes));
    out.push_back(fmt::format("limits.header_read_timeout: {}",
                              format_duration(c.limits.header_read_timeout)));
    out.push_back(fmt::format("limits.idle_timeout: {}", format_duration(c.limits.idle_timeout)));
    out.push_back(fmt::format("limits.write_timeout: {}", format_duration(c.limits.write_timeout)));
    out.push_back(fmt::format("limits.min_body_rate: {}", c.limits.min_body_rate));
    out.push_back(fmt::format("limits.min_body_rate_grace: {}",
                              format_duration(c.limits.min_body_rate_grace)));
    auto or_auto = [](unsigned v) { return v == 0 ? std::string("auto") : std::to_string(v); };
    out.push_back(fmt::format("limits.max_connections: {}", or_auto(c.limits.max_connections)));
    out.push_back(
        fmt::format("limits.max_connections_per_ip: {}", c.limits.max_connections_per_ip));
    out.push_back(
        fmt::format("limits.max_unauthenticated: {}", or_auto(c.limits.max_unauthenticated)));
    out.push_back(
        fmt::format("limits.attach_refusals_per_ip: {}", c.limits.attach_refusals_per_ip));
    out.push_back(fmt::format("limits.attach_refusal_window: {}",
                              format_duration(c.limits.attach_refusal_window)));
    out.push_back(
        fmt::format("limits.visitor_failures_per_ip: {}", c.limits.visitor_failures_per_ip));
    out.push_back(fmt::format("limits.visitor_failure_window: {}",
                              format_duration(c.limits.visitor_failure_window)));
    out.push_back(fmt::format("limits.max_password_checks: {}", c.limits.max_password_checks));
    out.push_back(
        fmt::format("limits.max_tunnels_per_tenant: {}", c.limits.max_tunnels_per_tenant));
    out.push_back(fmt::format("limits.max_names_per_tenant: {}", c.limits.max_names_per_tenant));
    out.push_back(
        fmt::format("limits.max_channel_buffer_bytes: {}", c.limits.max_channel_buffer_bytes));
    out.push_back(
        fmt::format("limits.max_tunnel_buffer_bytes: {}", c.limits.max_tunnel_buffer_bytes));
    out.push_back(
        fmt::format("limits.idle_channels_per_name: {}", c.limits.idle_channels_per_name));
    out.push_back(fmt::format("limits.idle_channel_timeout: {}",
                              format_duration(c.limits.idle_channel_timeout)));
    out.push_back(fmt::format("breaker.failures: {}", c.breaker.failures));
    out.push_back(fmt::format("breaker.cooldown: {}", format_duration(c.breaker.cooldown)));
    out.push_back(
        fmt::format("liveness.ping_interval: {}", format_duration(c.liveness.ping_interval)));
    out.push_back(
        fmt::format("liveness.ping_timeout: {}", format_duration(c.liveness.ping_timeout)));
    out.push_back(
        fmt::format("shutdown.drain_timeout: {}", format_duration(c.shutdown.drain_timeout)));
    for (auto& line : describe(c.visitors)) out.push_back(std::move(line));
    out.push_back(describe(c.agent_forwarding));
    for (auto& line : describe(c.leases, c.queue)) out.push_back(std::move(line));
    if (c.usage)
        for (auto& line : usage::describe(*c.usage)) out.push_back(std::move(line));
    else
        out.emplace_back("usage: (off)");
    for (auto& line : describe(c.tracing)) out.push_back(std::move(line));
    if (c.cluster)
        for (auto& line : describe(*c.cluster)) out.push_back(std::move(line));
    out.push_back(fmt::format("shares.state_file: {}", c.shares.state_file.empty()
                                                           ? "(none: grants in memory)"
                                                           : c.shares.state_file));
    for (auto& line : describe(c.tcp)) out.push_back(std::move(line));
    out.push_back(describe(c.revocation));
    return out;
}

}  // namespace tunnel::relay
