#include "relay/admin_server.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "relay/http_tracker.hpp"
#include "relay/relay_state.hpp"

namespace tunnel::relay {

namespace {

using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using steady = std::chrono::steady_clock;

std::string iso_time(std::chrono::system_clock::time_point t) {
    auto secs = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                       tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

nlohmann::json tunnel_json(const tunnel_entry& t) {
    nlohmann::json names = nlohmann::json::array();
    for (const auto& [name, port] : t.names) names.push_back(name);
    return {{"id", t.id},
            {"tenant", t.policy.tenant},
            {"peer", t.peer},
            {"names", names},
            {"attached_at", iso_time(t.attached_at)},
            {"token_expires_at", iso_time(t.policy.expires)},
            {"active_streams", t.active_streams},
            {"max_streams", t.policy.max_streams},
            {"rps", t.policy.rps},
            {"requests", t.requests},
            {"bytes_to_origin", t.bytes_to_origin},
            {"bytes_from_origin", t.bytes_from_origin},
            {"breaker", std::string(pool::to_string(t.breaker->state()))}};
}

admin_response json_response(const nlohmann::json& j, int status = 200) {
    return {status, "application/json", j.dump(2) + "\n"};
}

admin_response tunnels(relay_state& st) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& [id, t] : st.tunnels) list.push_back(tunnel_json(*t));
    return json_response({{"tunnels", list}});
}

admin_response diagnostics(relay_state& st) {
    const auto& c = st.counters;
    nlohmann::json j;
    j["uptime_seconds"] =
        std::chrono::duration_cast<std::chrono::seconds>(steady::now() - st.started).count();
    j["stopping"] = st.stopping;
    j["tls"] = st.tls;
    j["public_port"] = st.public_port;
    j["host_key_fingerprint"] = st.identity.fingerprint();
    j["jwt_key_fingerprint"] = st.verifier.key_fingerprint();
    j["tunnels"] = st.tunnels.size();
    j["routes"] = st.routes.size();
    j["in_flight"] = st.in_flight;
    j["rate_limit_buckets"] = st.limiter.size();
    j["counters"] = {{"attaches", c.attaches},
                     {"attach_refused", c.attach_refused},
                     {"detaches", c.detaches},
                     {"forwards_refused", c.forwards_refused},
                     {"requests", c.requests},
                     {"bad_requests", c.bad_requests},
                     {"rate_limited", c.rate_limited},
                     {"stream_limited", c.stream_limited},
                     {"breaker_refused", c.breaker_refused},
                     {"origin_failures", c.origin_failures},
                     {"header_timeouts", c.header_timeouts},
                     {"oversized", c.oversized}};
    return json_response(j);
}

admin_response metrics(relay_state& st) {
    st.metrics.active_tunnels.with({}).set(static_cast<double>(st.tunnels.size()));
    for (const auto& [id, t] : st.tunnels)
        for (const auto& [name, port] : t->names)
            st.metrics.breaker_open.with({t->policy.tenant, name})
                .set(t->breaker->state() == pool::breaker_state::closed ? 0 : 1);
    return {200, std::string(observe::metrics_registry::content_type), st.registry.expose()};
}

}  // namespace

std::vector<admin_endpoint> admin_endpoints() {
    std::vector<admin_endpoint> table;
    table.push_back({"/healthz", "200 while the process serves requests",
                     [](relay_state&) {
                         return admin_response{200, "text/plain", "ok\n"};
                     },
                     false});
    table.push_back({"/readyz", "200 when accepting tunnels and requests, 503 while shutting down",
                     [](relay_state& st) {
                         return st.stopping ? admin_response{503, "text/plain", "shutting down\n"}
                                            : admin_response{200, "text/plain", "ready\n"};
                     },
                     false});
    table.push_back({"/metrics", "Prometheus metrics", metrics, false});
    table.push_back({"/api/v1/tunnels", "attached tunnels, their names, limits and counters (JSON)",
                     tunnels, false});
    table.push_back({"/api/v1/diagnostics", "relay state and counters (JSON)", diagnostics, false});
    return table;
}

namespace {

admin_response help() {
    std::string out = "Relay admin endpoints:\n";
    out += fmt::format("  {:<22} {}\n", "/help", "this list");
    for (const auto& e : admin_endpoints())
        out += fmt::format("  {:<22} {}{}\n", e.path, e.help, e.mutates ? " (POST)" : "");
    return {200, "text/plain", out};
}

std::string render(const admin_response& r) {
    const char* reason = r.status == 200   ? "OK"
                         : r.status == 404 ? "Not Found"
                         : r.status == 405 ? "Method Not Allowed"
                         : r.status == 503 ? "Service Unavailable"
                                           : "Error";
    return fmt::format(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        r.status, reason, r.content_type, r.body.size(), r.body);
}

asio::awaitable<void> serve_admin(std::shared_ptr<relay_state> st, tcp::socket sock) {
    auto tracker = http_tracker::for_request(8192, 0);
    std::string in;
    std::vector<char> buf(4096);
    asio::steady_timer timer(sock.get_executor());
    timer.expires_after(std::chrono::seconds(10));
    timer.async_wait([&sock](error_code ec) {
        if (!ec) {
            error_code ignored;
            sock.cancel(ignored);
        }
    });
    while (!tracker.header_done()) {
        error_code ec;
        std::size_t n = co_await sock.async_read_some(
            asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return;
        in.append(buf.data(), n);
        in.erase(0, tracker.feed(in));  // what the parser took is never fed again
        if (tracker.problem() != http_problem::none) co_return;
    }
    timer.cancel();
    const auto& head = tracker.head();
    std::string path = head.target.substr(0, head.target.find('?'));
    admin_response r{404, "application/json",
                     R"({"error":"not_found","message":"see /help"})"
                     "\n"};
    if (path == "/help" || path == "/") {
        r = help();
    } else {
        for (const auto& e : admin_endpoints()) {
            if (e.path != path) continue;
            if (e.mutates && head.method != "POST") {
                r = {405, "application/json",
                     R"({"error":"method_not_allowed","message":"use POST"})"
                     "\n"};
            } else {
                r = e.handler(*st);
                if (e.mutates)
                    st->audit("admin", {{"path", path}, {"status", std::to_string(r.status)}});
            }
            break;
        }
    }
    std::string text = render(r);
    error_code ec;
    co_await asio::async_write(sock, asio::buffer(text),
                               asio::redirect_error(asio::use_awaitable, ec));
    sock.shutdown(tcp::socket::shutdown_both, ec);
}

asio::awaitable<void> accept_admin(std::shared_ptr<relay_state> st) {
    auto& acc = *st->admin_acceptor;
    for (;;) {
        error_code ec;
        tcp::socket sock = co_await acc.async_accept(asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            if (ec == asio::error::operation_aborted || !acc.is_open()) break;
            continue;
        }
        asio::co_spawn(st->io, serve_admin(st, std::move(sock)), asio::detached);
    }
}

}  // namespace

void start_admin(std::shared_ptr<relay_state> state) {
    auto& io = state->io;
    asio::co_spawn(io, accept_admin(std::move(state)), asio::detached);
}

}  // namespace tunnel::relay
