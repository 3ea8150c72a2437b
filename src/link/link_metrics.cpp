#include "link/link_metrics.hpp"

#include <string>

#include <nlohmann/json.hpp>

#include "link/link.hpp"
#include "link/manager.hpp"

namespace tunnel::link {

namespace {

double seconds_of(const nlohmann::json& ms) {
    return ms.is_number() ? ms.get<double>() / 1000 : 0;
}

double number(const nlohmann::json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_number() ? it->get<double>() : 0;
}

}  // namespace

void update_link_metrics(observe::metrics_registry& registry, manager& m) {
    auto& up = registry.gauge("tunnel_link_up", "1 when the link is up or degraded.", {"link"});
    auto& state =
        registry.gauge("tunnel_link_state", "1 for the link's current state.", {"link", "state"});
    auto& active = registry.gauge("tunnel_link_active_transport",
                                  "Index of the active transport; -1 when none.", {"link"});
    auto& rtt = registry.gauge("tunnel_link_rtt_seconds",
                               "Last keepalive round trip on the active transport.", {"link"});
    auto& switches =
        registry.counter("tunnel_link_switches_total", "Transport switches.", {"link"});
    auto& bytes = registry.counter("tunnel_link_bytes_total", "Bytes through the link's forwards.",
                                   {"link", "direction"});
    auto& t_up = registry.gauge("tunnel_link_transport_up", "1 when the transport's session is up.",
                                {"link", "transport"});
    auto& t_ewma = registry.gauge("tunnel_link_transport_rtt_ewma_seconds",
                                  "Smoothed keepalive round trip.", {"link", "transport"});
    auto& t_probes = registry.counter("tunnel_link_transport_probes_total", "Keepalive probes.",
                                      {"link", "transport"});
    auto& t_probe_failures = registry.counter("tunnel_link_transport_probe_failures_total",
                                              "Failed keepalive probes.", {"link", "transport"});
    auto& t_connects = registry.counter("tunnel_link_transport_connects_total",
                                        "Sessions established.", {"link", "transport"});
    auto& t_connect_failures = registry.counter("tunnel_link_transport_connect_failures_total",
                                                "Failed connects.", {"link", "transport"});
    auto& escalations =
        registry.counter("tunnel_link_escalations_total",
                         "Outages in which the link ran out of recovery steps.", {"link"});
    auto& t_predicted =
        registry.gauge("tunnel_link_transport_predicted_failure_seconds",
                       "Predicted seconds until the RTT trend crosses the failure bound; -1 none.",
                       {"link", "transport"});
    auto& t_predicted_error = registry.gauge(
        "tunnel_link_transport_predicted_failure_error_seconds",
        "One standard deviation of that prediction; -1 none.", {"link", "transport"});
    for (const auto& l : m.links()) {
        const auto s = l->status();
        const std::string name = l->name();
        const std::string current = s.value("state", std::string());
        up.with({name}).set(current == "up" || current == "degraded" ? 1 : 0);
        for (auto st : {link_state::starting, link_state::up, link_state::degraded,
                        link_state::down, link_state::stopped, link_state::unsupported}) {
            const std::string text(to_string(st));
            state.with({name, text}).set(text == current ? 1 : 0);
        }
        const auto& t = s["transport"];
        active.with({name}).set(t.is_object() ? number(t, "index") : -1);
        rtt.with({name}).set(seconds_of(s["rtt_ms"]));
        switches.with({name}).advance_to(number(s, "switches"));
        escalations.with({name}).advance_to(number(s, "escalations"));
        bytes.with({name, "in"}).advance_to(number(s["bytes"], "in"));
        bytes.with({name, "out"}).advance_to(number(s["bytes"], "out"));
        for (const auto& tr : s["transports"]) {
            const std::string tn = tr.value("name", std::string());
            t_up.with({name, tn}).set(tr.value("state", std::string()) == "up" ? 1 : 0);
            t_ewma.with({name, tn}).set(seconds_of(tr["rtt_ewma_ms"]));
            t_probes.with({name, tn}).advance_to(number(tr, "probes"));
            t_probe_failures.with({name, tn}).advance_to(number(tr, "probe_failures"));
            t_connects.with({name, tn}).advance_to(number(tr, "connects"));
            t_connect_failures.with({name, tn}).advance_to(number(tr, "connect_failures"));
            const auto& p = tr["predicted_failure_s"];
            t_predicted.with({name, tn}).set(p.is_object() ? number(p, "in") : -1);
            t_predicted_error.with({name, tn}).set(p.is_object() ? number(p, "error") : -1);
        }
    }
}

std::vector<observe::admin_endpoint> link_status_endpoints(std::shared_ptr<manager> m,
                                                           observe::metrics_registry& registry) {
    using observe::admin_request;
    using observe::admin_response;
    std::vector<observe::admin_endpoint> t;
    t.push_back({"/healthz", "200 when every link that can run is up or degraded, else 503",
                 [m](const admin_request&) {
                     std::string down;
                     for (const auto& l : m->links()) {
                         const auto st = l->state();
                         if (st != link_state::up && st != link_state::degraded &&
                             st != link_state::unsupported)
                             down += (down.empty() ? "" : ", ") + l->name();
                     }
                     return down.empty() ? admin_response::text("ok\n")
                                         : admin_response::text("down: " + down + "\n", 503);
                 },
                 false, true});
    t.push_back({"/metrics", "Prometheus text: state, transport, RTT, switches, bytes per link",
                 [m, &registry](const admin_request&) {
                     update_link_metrics(registry, *m);
                     return admin_response::metrics(registry.expose());
                 }});
    t.push_back({"/api/v1/links", "JSON: every link, as `tunnel ls --json` prints it",
                 [m](const admin_request&) {
                     return admin_response::json(m->handle({{"cmd", "ls"}}).dump() + "\n");
                 }});
    return t;
}

}  // namespace tunnel::link
