#include "relay/agent_policy.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/glob.hpp"
#include "core/log_text.hpp"
#include "relay/public_route.hpp"
#include "relay/relay_state.hpp"
#include "ssh/server_session.hpp"

namespace tunnel::relay {

namespace {

std::string_view request_name(ssh::agent_request what) {
    return what == ssh::agent_request::forwarding ? "auth-agent-req@openssh.com"
                                                  : "auth-agent@openssh.com channel";
}

}  // namespace

void read_agent_forwarding_config(core::yaml_reader& r, const YAML::Node& node,
                                  const std::string& path, agent_forwarding_config& out) {
    if (!r.expect_map(node, path, {"tenants"})) return;
    if (!node["tenants"]) return;
    const std::string key = path + ".tenants";
    auto list = r.string_list(node["tenants"], key);
    if (!list) return;
    for (const auto& t : *list) {
        if (!valid_tenant_glob(t)) {
            r.error(key, fmt::format("\"{}\" is not a tenant name or glob (1-63 of a-z 0-9 - "
                                     "* ?), e.g. ops or build-*",
                                     core::log_text(t, 64)));
            continue;
        }
        out.tenants.push_back(t);
    }
}

std::string describe(const agent_forwarding_config& config) {
    if (config.tenants.empty())
        return "agent_forwarding.tenants: (none: agent forwarding refused for every tenant)";
    return fmt::format("agent_forwarding.tenants: {}", fmt::join(config.tenants, ", "));
}

agent_decision decide_agent_request(const agent_forwarding_config& config, std::string_view tenant,
                                    ssh::agent_request what) {
    agent_decision d;
    if (what == ssh::agent_request::channel_open) {
        d.reason =
            "the client opened an auth-agent@openssh.com channel; only servers open those, and "
            "the relay has no agent to offer";
    } else {
        for (const auto& g : config.tenants)
            if (core::glob_match(g, tenant)) d.allowed = true;
        d.reason = d.allowed ? "agent forwarding accepted by agent_forwarding.tenants (the relay "
                               "runs no programs: the agent is never used)"
                             : "agent forwarding is not allowed for this tenant (relay config "
                               "agent_forwarding.tenants)";
    }
    d.event = d.allowed ? "agent_forwarding_allowed" : "agent_forwarding_refused";
    return d;
}

std::function<void(ssh::agent_request)> agent_request_handler(std::weak_ptr<relay_state> relay,
                                                              std::weak_ptr<tunnel_entry> tunnel) {
    auto seen = std::make_shared<unsigned>(0);
    return [relay = std::move(relay), tunnel = std::move(tunnel), seen](ssh::agent_request what) {
        auto r = relay.lock();
        auto t = tunnel.lock();
        if (!r || !t) return;
        const auto d =
            decide_agent_request(r->live()->config.agent_forwarding, t->policy.tenant, what);
        r->registry
            .counter("relay_agent_requests_total",
                     "Agent-forwarding requests from tunnel clients, by tenant and outcome "
                     "(allowed, refused)",
                     {"tenant", "outcome"})
            .with({t->policy.tenant, d.allowed ? "allowed" : "refused"})
            .inc();
        const unsigned n = ++*seen;
        if (n > max_audited_agent_requests) {
            spdlog::debug("tunnel {} ({}): {} {}", t->id, t->policy.tenant, request_name(what),
                          d.allowed ? "allowed" : "refused");
            return;
        }
        auto level = d.allowed ? spdlog::level::info : spdlog::level::warn;
        spdlog::log(level, "tunnel {} ({}) from {}: {} {}: {}{}", t->id, t->policy.tenant, t->peer,
                    request_name(what), d.allowed ? "allowed" : "refused", d.reason,
                    n == max_audited_agent_requests
                        ? "; further agent requests of this tunnel are only counted"
                        : "");
        r->audit(d.event, {{"tenant", t->policy.tenant},
                           {"peer", t->peer},
                           {"request", std::string(request_name(what))},
                           {"reason", d.reason}});
    };
}

}  // namespace tunnel::relay
