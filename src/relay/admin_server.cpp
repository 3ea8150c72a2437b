#include "relay/admin_server.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "core/secret_file.hpp"
#include "core/utc_time.hpp"
#include "relay/dashboard.hpp"
#include "relay/relay_state.hpp"
#include "relay/tcp_service.hpp"
#include "relay/token_revocation.hpp"
#include "relay/usage_endpoint.hpp"

namespace tunnel::relay {

namespace {

using observe::admin_request;
using observe::admin_response;
using steady = std::chrono::steady_clock;

using core::utc_iso8601;

// From any thread: the fields fixed at attach, the atomics, and the names
// from the route table (docs/relay.md "Threading model").
nlohmann::json tunnel_json(const tunnel_entry& t, const route_table& table) {
    nlohmann::json names = nlohmann::json::array();
    for (const auto& [key, ref] : table.routes)
        if (ref.id == t.id) names.push_back(key.second);
    return {{"id", t.id},
            {"worker", t.worker},
            {"tenant", t.policy.tenant},
            {"peer", t.peer},
            {"names", names},
            {"attached_at", utc_iso8601(t.attached_at)},
            {"token_expires_at", utc_iso8601(t.policy.expires)},
            {"active_streams", t.active_streams.load()},
            {"max_streams", t.policy.max_streams},
            {"rps", t.policy.rps},
            {"requests", t.requests.load()},
            {"bytes_to_origin", t.bytes_to_origin.load()},
            {"bytes_from_origin", t.bytes_from_origin.load()},
            {"breaker", std::string(pool::to_string(t.breaker_seen.load()))}};
}

admin_response json_response(const nlohmann::json& j, int status = 200) {
    return admin_response::json(
        j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", status);
}

admin_response tunnels(relay_state& st) {
    nlohmann::json list = nlohmann::json::array();
    const auto table = st.table();
    for (const auto& [id, ref] : table->tunnels)
        if (auto t = ref.tunnel.lock()) list.push_back(tunnel_json(*t, *table));
    return json_response({{"tunnels", list}});
}

// Counts for people, read from the metric families (the one source).
nlohmann::json counters_json(const relay_metrics& m) {
    auto n = [](double v) { return static_cast<std::uint64_t>(v); };
    const auto& limit = m.limits_hit;
    return {{"attaches", n(m.attaches.value({"attached"}))},
            {"attach_refused", n(m.attaches.value({"refused"}) + m.attaches.value({"failed"}))},
            {"detaches", n(m.detaches.total())},
            {"forwards_refused", n(m.forwards_refused.total())},
            {"requests", n(m.requests.total())},
            {"bad_requests", n(m.bad_requests.total())},
            {"rate_limited", n(limit.value({"tenant_rate"}) + limit.value({"route_rate"}))},
            {"stream_limited", n(limit.value({"streams"}))},
            {"breaker_refused", n(limit.value({"breaker"}))},
            {"origin_failures", n(m.origin_failures.total())},
            {"header_timeouts", n(limit.value({"header_timeout"}))},
            {"oversized", n(limit.value({"header_size"}) + limit.value({"body_size"}))},
            {"audit_write_failures", n(m.audit_write_failures.total())}};
}

admin_response diagnostics(relay_state& st) {
    nlohmann::json j;
    j["uptime_seconds"] =
        std::chrono::duration_cast<std::chrono::seconds>(steady::now() - st.started).count();
    j["stopping"] = st.stopping.load();
    j["workers"] = st.workers.size();
    j["tls"] = st.tls;
    j["public_port"] = st.public_port;
    j["host_key_fingerprint"] = st.identity.fingerprint();
    j["jwt_key_fingerprint"] = st.live()->verifier.key_fingerprint();
    const auto table = st.table();
    j["tunnels"] = table->tunnels.size();
    j["routes"] = table->routes.size();
    j["in_flight"] = st.in_flight.load();
    j["rate_limit_buckets"] = st.limiter.size();
    if (st.shared_rates)  // cluster: the balances refilled from Redis
        j["shared_rate_limit_buckets"] = st.shared_rates->size();
    j["counters"] = counters_json(st.metrics);
    return json_response(j);
}

admin_response metrics(relay_state& st) {
    const auto table = st.table();
    st.metrics.active_tunnels.with({}).set(static_cast<double>(table->tunnels.size()));
    for (const auto& [key, ref] : table->routes)
        if (auto t = ref.tunnel.lock())
            st.metrics.breaker_open.with({key.first, key.second})
                .set(t->breaker_seen.load() == pool::breaker_state::closed ? 0 : 1);
    return admin_response::metrics(st.registry.expose());
}

admin_response audit_head(relay_state& st) {
    if (!st.audit_log)
        return admin_response::error(404, "no_audit_log",
                                     "the relay keeps no audit log (set audit_log: PATH)");
    std::lock_guard lock(st.audit_mutex);
    const auto& log = *st.audit_log;
    return json_response({{"file", log.path()},
                          {"head", log.last_hash()},
                          {"keyed", log.keyed()},
                          {"chain", log.keyed() ? "hmac-sha256" : "sha256"},
                          {"bytes", log.size()}});
}

// Runs `fn` on the state while the relay exists.
template <class Fn>
std::function<admin_response(const admin_request&)> with_state(std::weak_ptr<relay_state> weak,
                                                               Fn fn) {
    return [weak, fn](const admin_request&) {
        auto st = weak.lock();
        if (!st) return admin_response::error(503, "stopped", "the relay has stopped");
        return fn(*st);
    };
}

}  // namespace

std::vector<observe::admin_endpoint> admin_endpoints(const std::shared_ptr<relay_state>& state) {
    std::weak_ptr<relay_state> weak = state;
    std::vector<observe::admin_endpoint> table;
    table.push_back({"/healthz", "200 while the process serves requests",
                     with_state(weak, [](relay_state&) { return admin_response::text("ok\n"); }),
                     false, true});
    table.push_back({"/readyz", "200 when accepting tunnels and requests, 503 while shutting down",
                     with_state(weak,
                                [](relay_state& st) {
                                    return st.stopping
                                               ? admin_response::text("shutting down\n", 503)
                                               : admin_response::text("ready\n");
                                }),
                     false, true});
    table.push_back({"/metrics", "Prometheus metrics", with_state(weak, metrics)});
    table.push_back({"/api/v1/tunnels", "attached tunnels, their names, limits and counters (JSON)",
                     with_state(weak, tunnels)});
    table.push_back(
        {"/api/v1/diagnostics", "relay state and counters (JSON)", with_state(weak, diagnostics)});
    table.push_back({"/api/v1/audit/head",
                     "the audit log's head hash, for `tunnel audit verify --expect-head` (JSON)",
                     with_state(weak, audit_head)});
    for (auto& e : dashboard_endpoints(state)) table.push_back(std::move(e));
    for (auto& e : usage_endpoints(state)) table.push_back(std::move(e));
    for (auto& e : tcp_endpoints(state)) table.push_back(std::move(e));
    for (auto& e : revocation_endpoints(state)) table.push_back(std::move(e));
    return table;
}

core::result<void> create_admin(const std::shared_ptr<relay_state>& state) {
    auto& cfg = state->config;
    observe::admin_server_options o;
    o.title = "Relay admin endpoints";
    o.log_name = "admin";
    o.registry = &state->registry;
    o.read_timeout = std::min(cfg.limits.header_read_timeout,
                              std::chrono::milliseconds(std::chrono::seconds(10)));
    o.access.allowed_hosts = cfg.admin.allowed_hosts;
    o.access.token_hint = "the token in the relay's admin.token_file";
    if (!cfg.admin.token_file.empty()) {
        auto token = core::read_secret_file(cfg.admin.token_file, "admin.token_file", 16);
        if (!token) return tl::unexpected(token.error());
        o.access.bearer_token = std::move(*token);
    }
    std::weak_ptr<relay_state> weak = state;
    o.on_mutation = [weak](const admin_request& r, const admin_response& res) {
        if (auto st = weak.lock())
            (void)st->audit(
                "admin",
                {{"path", r.path}, {"peer", r.peer}, {"status", std::to_string(res.status)}});
    };
    if (!state->admin_acceptor)
        return core::fail(core::errc::invalid_argument, "the admin listener is not bound");
    state->dashboard =
        std::make_shared<dashboard_feed>(state->io.get_executor(), dashboard_options{});
    state->admin_server = observe::admin_http_server::create(std::move(*state->admin_acceptor),
                                                             admin_endpoints(state), std::move(o));
    state->admin_acceptor.reset();
    return {};
}

void start_admin(const std::shared_ptr<relay_state>& state) {
    if (state->admin_server) state->admin_server->start();
    if (state->dashboard) state->dashboard->start(state);
}

}  // namespace tunnel::relay
