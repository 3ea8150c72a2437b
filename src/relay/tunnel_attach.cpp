#include "relay/tunnel_attach.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/spawn.hpp"
#include "relay/public_connection.hpp"
#include "relay/publish_request.hpp"
#include "relay/relay_state.hpp"
#include "relay/visitor_config.hpp"

namespace tunnel::relay {

namespace {

using steady = std::chrono::steady_clock;
using error_code = boost::system::error_code;
namespace websocket = beast::websocket;

constexpr std::size_t ws_chunk = 256 * 1024;  // WebSocket messages and socketpair reads (§5)

// An attached tunnel's WebSocket and the relay's end of the socketpair that
// libssh uses as the SSH session's socket.
template <class S>
struct ws_link {
    ws_link(std::shared_ptr<stream_impl<S>> s, const asio::any_io_executor& ex, int fd)
        : stream(std::move(s)), ws(stream->next()), pair(ex, fd) {}
    std::shared_ptr<stream_impl<S>> stream;
    websocket::stream<S&> ws;
    asio::posix::stream_descriptor pair;  // the relay's end of the socketpair to libssh
    websocket::close_code close_code = websocket::close_code::normal;
    std::string close_reason = "tunnel closed";
    core::close_registry::handle owned;  // "tunnel" in relay_state::owned while a pump runs

    // Ends both pumps: libssh sees EOF, the WebSocket's socket is closed.
    void close() {
        error_code ignored;
        pair.close(ignored);
        stream->close();
    }
};

// Tunnel pumps start with small buffers (an idle tunnel costs little) and
// grow to ws_chunk when reads fill them (bulk transfers).
constexpr std::size_t idle_chunk = 16 * 1024;

void grow_when_full(std::vector<char>& buf, std::size_t n) {
    if (n == buf.size() && buf.size() < ws_chunk) buf.resize(std::min(ws_chunk, buf.size() * 4));
}

// WebSocket -> SSH server. Message boundaries mean nothing (contract).
template <class S>
asio::awaitable<void> ws_to_ssh(std::shared_ptr<ws_link<S>> link) {
    std::vector<char> buf(idle_chunk);
    for (;;) {
        error_code ec;
        std::size_t n = co_await link->ws.async_read_some(
            asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            spdlog::debug("tunnel WebSocket read ended: {}", ec.message());
            break;
        }
        grow_when_full(buf, n);
        co_await asio::async_write(link->pair, asio::buffer(buf.data(), n),
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
    }
    error_code ignored;
    link->pair.close(ignored);  // libssh sees EOF: the session ends
}

// SSH server -> WebSocket; closes the WebSocket with the reason when the
// session ends.
template <class S>
asio::awaitable<void> ssh_to_ws(std::shared_ptr<ws_link<S>> link) {
    std::vector<char> buf(idle_chunk);
    for (;;) {
        error_code ec;
        std::size_t n = co_await link->pair.async_read_some(
            asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
        grow_when_full(buf, n);
        co_await link->ws.async_write(asio::buffer(buf.data(), n),
                                      asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
    }
    if (link->ws.is_open()) {
        error_code ec;
        websocket::close_reason reason(link->close_code, link->close_reason);
        co_await link->ws.async_close(reason, asio::redirect_error(asio::use_awaitable, ec));
    }
    error_code ignored;
    link->pair.close(ignored);
    link->stream->close();
}

template <class S>
asio::awaitable<void> run_tunnel(std::shared_ptr<relay_state> relay,
                                 std::shared_ptr<stream_impl<S>> stream, http_head head,
                                 tenant_policy policy, std::string peer) {
    auto& cfg = relay->config;
    auto ex = co_await asio::this_coro::executor;

    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) != 0) {
        std::string text =
            error_response(503, "resource_exhausted", "the relay cannot create a socket pair");
        error_code ec;
        co_await stream->write(asio::buffer(text), ec);
        stream->close();
        co_return;
    }
    auto link = std::make_shared<ws_link<S>>(stream, ex, fds[1]);
    // From here the pumps own the link; shutdown closes it (which also ends
    // an SSH handshake still in progress: libssh sees EOF).
    link->owned = relay->owned.add("tunnel", [weak = std::weak_ptr<ws_link<S>>(link)] {
        if (auto l = weak.lock()) l->close();
    });
    auto& ws = link->ws;
    ws.auto_fragment(false);
    ws.write_buffer_bytes(ws_chunk);
    ws.read_message_max(0);
    ws.binary(true);
    websocket::stream_base::timeout timeouts;
    timeouts.handshake_timeout = std::chrono::seconds(10);
    // Beast pings after half the idle time and gives up at the idle time.
    timeouts.idle_timeout = cfg.liveness.ping_interval + cfg.liveness.ping_timeout;
    timeouts.keep_alive_pings = true;
    ws.set_option(timeouts);

    std::string tenant = policy.tenant;
    // One URL per published name; the client puts the name in for {name}.
    std::string url = relay->public_url(tenant, "{name}");
    const routing_mode routing = routing_of(cfg);
    std::string domain = routes_by_host(routing) ? cfg.domain : std::string();
    bool offers_ssh = false;
    if (const auto* protocols = head.find("Sec-WebSocket-Protocol")) {
        std::string_view p = *protocols;
        while (!p.empty()) {
            auto comma = p.find(',');
            auto item = p.substr(0, comma);
            while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
            while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
            if (item == "ssh") offers_ssh = true;
            if (comma == std::string_view::npos) break;
            p.remove_prefix(comma + 1);
        }
    }
    ws.set_option(websocket::stream_base::decorator(
        [tenant, url, domain, routing, offers_ssh](websocket::response_type& res) {
            res.set(beast::http::field::server, "tunnel-relay");
            res.set("Tunnel-Tenant", tenant);
            res.set("Tunnel-Public-Url", url);
            res.set("Tunnel-Routing", std::string(to_string(routing)));
            if (!domain.empty()) res.set("Tunnel-Domain", domain);
            if (offers_ssh) res.set(beast::http::field::sec_websocket_protocol, "ssh");
        }));

    beast::http::request<beast::http::empty_body> req;
    req.method_string(head.method);
    req.target(head.target);
    req.version(head.version);
    for (const auto& f : head.fields) req.insert(f.name, f.value);
    error_code ec;
    co_await ws.async_accept(req, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
        spdlog::info("tunnel attach from {} failed during the WebSocket handshake: {}", peer,
                     ec.message());
        ::close(fds[0]);
        stream->close();
        co_return;
    }
    core::spawn(ex, ws_to_ssh(link), "relay tunnel WebSocket to SSH pump");
    core::spawn(ex, ssh_to_ws(link), "relay tunnel SSH to WebSocket pump");

    auto t = std::make_shared<tunnel_entry>();
    t->id = relay->next_tunnel_id++;
    t->policy = policy;
    t->peer = peer;
    t->attached_at = std::chrono::system_clock::now();
    t->breaker = std::make_unique<pool::circuit_breaker>(
        pool::breaker_settings{cfg.breaker.failures, cfg.breaker.cooldown});

    ssh::server_options so;
    so.user = tenant;
    so.keepalive_interval = cfg.liveness.ping_interval;
    so.keepalive_count_max = std::max<int>(
        1, static_cast<int>(cfg.liveness.ping_timeout /
                            std::max(cfg.liveness.ping_interval, std::chrono::milliseconds(1))) +
               1);
    std::weak_ptr<tunnel_entry> weak = t;
    std::weak_ptr<relay_state> weak_relay = relay;
    std::weak_ptr<ws_link<S>> weak_link = link;
    ssh::server_handlers handlers;
    handlers.on_forward = [weak, weak_relay](const std::string& address, std::uint32_t port) {
        ssh::forward_decision d;
        std::string name;  // as published (lower case, without the access parameters)
        auto tt = weak.lock();
        auto r = weak_relay.lock();
        if (!tt || !r) return d;
        // The bind address carries the name and who may call it
        // (publish_request.hpp); the operator's visitors: entry wins.
        auto bound = [&]() -> core::result<std::uint32_t> {
            auto request = parse_publish_request(address);
            if (!request) return tl::unexpected(request.error());
            auto access = resolve_access(
                *request, tt->policy.access,
                configured_access(r->config.visitors, tt->policy.tenant, request->name));
            if (!access) return tl::unexpected(access.error());
            if (access->mode == access_mode::token && !r->visitor_tokens)
                return core::fail(core::errc::denied,
                                  "access token needs visitor tokens, and this relay has no "
                                  "visitors.secret_file: ask its operator, or choose another mode");
            auto published = r->publish(tt, request->name, port);
            if (published) {
                name = request->name;
                tt->access[name] = std::move(*access);
            }
            return published;
        }();
        if (!bound) {
            ++r->counters.forwards_refused;
            r->metrics.forwards_refused.with({tt->policy.tenant}).inc();
            d.reason = bound.error().message;
            spdlog::warn("tunnel {} ({}): publish refused: {}", tt->id, tt->policy.tenant,
                         d.reason);
            r->audit("publish_refused",
                     {{"tenant", tt->policy.tenant},
                      {"name", address.substr(0, std::min<std::size_t>(address.find(';'), 64))},
                      {"reason", d.reason},
                      {"peer", tt->peer}});
            return d;
        }
        d.accepted = true;
        d.bound_port = *bound;
        const std::string access = tt->access[name].describe();
        spdlog::info("tunnel {} ({}): published {} (access {})", tt->id, tt->policy.tenant, name,
                     access);
        r->audit("publish", {{"tenant", tt->policy.tenant},
                             {"name", name},
                             {"access", access},
                             {"peer", tt->peer}});
        return d;
    };
    handlers.on_cancel = [weak, weak_relay](const std::string& address, std::uint32_t) {
        auto tt = weak.lock();
        auto r = weak_relay.lock();
        if (!tt || !r) return;
        // The cancel repeats the bind address of the forward ("llm;access=token").
        std::string name = address.substr(0, address.find(';'));
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        r->unpublish(*tt, name);
        tt->names.erase(name);
        tt->access.erase(name);
        r->audit("unpublish", {{"tenant", tt->policy.tenant}, {"name", name}});
    };
    handlers.on_closed = [weak, weak_relay, weak_link](const core::error& why) {
        if (auto l = weak_link.lock()) {
            error_code ignored;
            l->pair.close(ignored);  // ssh_to_ws then closes the WebSocket
        }
        auto tt = weak.lock();
        auto r = weak_relay.lock();
        if (!tt || !r) return;
        tt->closing = true;
        if (tt->expiry) tt->expiry->cancel();
        for (const auto& [name, port] : tt->names)
            r->metrics.breaker_open.with({tt->policy.tenant, name}).set(0);
        if (r->tunnels.count(tt->id)) {
            ++r->counters.detaches;
            r->metrics.detaches.with({}).inc();
            spdlog::info("tunnel {} ({}) detached: {}", tt->id, tt->policy.tenant, why.message);
            r->audit("detach",
                     {{"tenant", tt->policy.tenant}, {"peer", tt->peer}, {"reason", why.message}});
        }
        r->remove(tt->id);
        r->metrics.active_tunnels.with({}).set(static_cast<double>(r->tunnels.size()));
    };

    auto session =
        co_await ssh::server_session::accept(ex, fds[0], relay->identity, so, std::move(handlers));
    if (!session) {
        ++relay->counters.attach_refused;
        relay->metrics.attaches.with({"failed"}).inc();
        spdlog::info("tunnel attach from {} ({}) failed: {}", peer, tenant,
                     session.error().message);
        relay->audit("attach_failed",
                     {{"tenant", tenant}, {"peer", peer}, {"reason", session.error().message}});
        link->close_code = websocket::close_code::policy_error;
        link->close_reason = session.error().message.substr(0, 120);
        error_code ignored;
        link->pair.close(ignored);
        relay->remove(t->id);
        for (const auto& [name, port] : t->names) relay->unpublish(*t, name);
        co_return;
    }
    t->ssh = *session;
    relay->tunnels[t->id] = t;
    ++relay->counters.attaches;
    relay->metrics.attaches.with({"attached"}).inc();
    relay->metrics.active_tunnels.with({}).set(static_cast<double>(relay->tunnels.size()));
    spdlog::info("tunnel {} attached: tenant {} from {}", t->id, tenant, peer);
    relay->audit("attach", {{"tenant", tenant}, {"peer", peer}, {"tunnel", std::to_string(t->id)}});

    std::weak_ptr<ssh::server_session> weak_session = t->ssh;
    t->close = [weak_link, weak_session](const std::string& reason) {
        if (auto l = weak_link.lock()) {
            l->close_reason = reason;
            l->close_code = reason.rfind("relay shutting down", 0) == 0
                                ? websocket::close_code::going_away
                                : websocket::close_code::policy_error;
        }
        if (auto s = weak_session.lock()) s->disconnect(reason);
    };
    // The token's expiry closes the tunnel with a reason.
    t->expiry = std::make_unique<asio::steady_timer>(ex);
    t->expiry->expires_after(std::chrono::duration_cast<steady::duration>(
        policy.expires - std::chrono::system_clock::now()));
    t->expiry->async_wait([weak, weak_relay](error_code e) {
        if (e) return;
        auto tt = weak.lock();
        auto r = weak_relay.lock();
        if (!tt || !r || tt->closing) return;
        r->audit("token_expired", {{"tenant", tt->policy.tenant}, {"peer", tt->peer}});
        if (tt->close) tt->close("token expired: attach again with a fresh token");
    });
    // A hard close (relay_server::close) disconnects it (which also cancels
    // the expiry timer); a graceful shutdown has done so before with "relay
    // shutting down", and does so here for a tunnel that attached meanwhile.
    t->owned = relay->owned.add("attached tunnel", [weak] {
        if (auto tt = weak.lock(); tt && tt->close) tt->close("relay closed");
    });
    if (relay->stopping && !t->closing) t->close("relay shutting down");
}

}  // namespace

// Authenticates an attach and hands the stream to run_tunnel.
asio::awaitable<void> attach(std::shared_ptr<relay_state> relay, std::shared_ptr<public_conn> conn,
                             http_head head) {
    const std::string peer = fmt::format("{}:{}", conn->peer_ip, conn->peer_port);
    auto refuse = [&](int status, std::string code, std::string message) {
        ++relay->counters.attach_refused;
        relay->metrics.attaches.with({"refused"}).inc();
        spdlog::info("tunnel attach from {} refused: {}", peer, message);
        relay->audit("attach_refused", {{"peer", peer}, {"error", code}, {"reason", message}});
        return error_response(status, code, message);
    };
    if (relay->stopping) {
        co_await send(*conn, refuse(503, "shutting_down",
                                    "the relay is shutting down; attach again in a moment"));
        conn->close();
        co_return;
    }
    const std::string* auth = head.find("Authorization");
    std::string_view token;
    if (auth && auth->size() > 7 && iequals(std::string_view(*auth).substr(0, 7), "Bearer "))
        token = std::string_view(*auth).substr(7);
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
    if (token.empty()) {
        co_await send(*conn,
                      refuse(401, "missing_token",
                             "the attach request has no 'Authorization: Bearer <JWT>' header: pass "
                             "--token-file FILE"));
        conn->close();
        co_return;
    }
    auto policy = relay->verifier.verify(token);
    if (!policy) {
        co_await send(*conn, refuse(401, std::string(to_string(policy.error().code)),
                                    policy.error().message));
        conn->close();
        co_return;
    }
    if (!head.upgrade) {
        co_await send(
            *conn,
            refuse(426, "upgrade_required",
                   "GET /v1/tunnel must be a WebSocket upgrade (use tunnel connect or tunnel "
                   "ws-connect)"));
        conn->close();
        co_return;
    }
    if (auto p = std::dynamic_pointer_cast<tls_stream>(conn->stream))
        co_await run_tunnel(relay, p, std::move(head), std::move(*policy), peer);
    else if (auto q = std::dynamic_pointer_cast<plain_stream>(conn->stream))
        co_await run_tunnel(relay, q, std::move(head), std::move(*policy), peer);
}

}  // namespace tunnel::relay
