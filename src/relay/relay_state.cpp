#include "relay/relay_state.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "relay/public_route.hpp"

namespace tunnel::relay {

relay_metrics::relay_metrics(observe::metrics_registry& r)
    : attaches(
          r.counter("relay_attaches_total", "Tunnel attach attempts by outcome.", {"outcome"})),
      detaches(r.counter("relay_detaches_total", "Tunnels detached.")),
      active_tunnels(r.gauge("relay_active_tunnels", "Attached tunnels.")),
      forwards_refused(r.counter("relay_forwards_refused_total",
                                 "tcpip-forward requests refused by policy.", {"tenant"})),
      requests(r.counter("relay_requests_total",
                         "Public requests by tenant, route and status class.",
                         {"tenant", "route", "status"})),
      bytes(r.counter("relay_bytes_total", "Bytes proxied by tenant and direction.",
                      {"tenant", "direction"})),
      latency(r.histogram("relay_request_seconds",
                          "Public request latency (head read to last byte).", {"tenant"},
                          observe::default_latency_buckets())),
      ttfb(r.histogram("relay_time_to_first_byte_seconds", "Head read to the first response byte.",
                       {"tenant"}, observe::default_latency_buckets())),
      limits_hit(r.counter("relay_limits_hit_total", "Requests refused by a limit.", {"limit"})),
      breaker_open(r.gauge("relay_breaker_open",
                           "1 while a tunnel's circuit breaker is not closed.",
                           {"tenant", "route"})),
      visitor_refusals(r.counter("relay_visitor_refusals_total",
                                 "Public requests refused by a name's visitor access policy.",
                                 {"tenant", "reason"})) {}

relay_state::relay_state(asio::io_context& io_context, relay_config cfg, token_verifier v,
                         ssh::server_identity id)
    : io(io_context), config(std::move(cfg)), verifier(std::move(v)), identity(std::move(id)) {}

core::result<std::uint32_t> relay_state::publish(const std::shared_ptr<tunnel_entry>& t,
                                                 const std::string& address, std::uint32_t port) {
    auto name = normalize_label(address, "service name");
    if (!name) return tl::unexpected(name.error());
    if (std::chrono::system_clock::now() >= t->policy.expires)
        return core::fail(core::errc::denied, "the tunnel's token has expired");
    if (!may_publish(t->policy, *name))
        return core::fail(
            core::errc::denied,
            fmt::format("the token of tenant {} does not allow the name {:?} (allowed: {})",
                        t->policy.tenant, *name, fmt::join(t->policy.allow, ", ")));
    auto key = std::make_pair(t->policy.tenant, *name);
    if (auto it = routes.find(key); it != routes.end() && it->second.get() != t.get())
        return core::fail(core::errc::denied,
                          fmt::format("{:?} is already published by another tunnel of tenant {}",
                                      *name, t->policy.tenant));
    const std::uint32_t bound = port == 0 ? 80 : port;
    routes[key] = t;
    t->names[*name] = bound;
    return bound;
}

void relay_state::unpublish(const tunnel_entry& t, const std::string& address) {
    std::string name = address;
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto key = std::make_pair(t.policy.tenant, name);
    if (auto it = routes.find(key); it != routes.end() && it->second.get() == &t) routes.erase(it);
}

void relay_state::remove(std::uint64_t id) {
    auto it = tunnels.find(id);
    if (it == tunnels.end()) return;
    auto t = it->second;
    for (const auto& [name, port] : t->names) unpublish(*t, name);
    t->names.clear();
    tunnels.erase(it);
}

std::shared_ptr<tunnel_entry> relay_state::find(const std::string& tenant,
                                                const std::string& name) const {
    auto it = routes.find(std::make_pair(tenant, name));
    if (it == routes.end()) return nullptr;
    return it->second;
}

void relay_state::audit(const std::string& event,
                        const std::vector<std::pair<std::string, std::string>>& fields) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [k, v] : fields) j[k] = v;
    if (audit_log) {
        if (auto a = audit_log->append(event, j); !a)
            spdlog::warn("audit log {}: {} (event {} not recorded)", audit_log->path(),
                         a.error().message, event);
    } else {
        spdlog::debug("audit {} {}", event, j.dump());
    }
}

std::string relay_state::public_url(const std::string& tenant, const std::string& name) const {
    const std::string scheme = tls ? "https" : "http";
    const bool default_port = public_port == (tls ? 443 : 80);
    const std::string port = default_port ? std::string() : fmt::format(":{}", public_port);
    if (routes_by_host(routing_of(config)) && !config.domain.empty())
        return fmt::format("{}://{}--{}.{}{}/", scheme, name, tenant, config.domain, port);
    std::string host = config.domain;
    if (host.empty())
        host = config.listen.host.empty() || config.listen.host == "0.0.0.0" ? "127.0.0.1"
                                                                             : config.listen.host;
    if (host.find(':') != std::string::npos) host = "[" + host + "]";
    return fmt::format("{}://{}{}/t/{}/{}/", scheme, host, port, tenant, name);
}

}  // namespace tunnel::relay
