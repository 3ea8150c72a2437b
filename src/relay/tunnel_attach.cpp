#include "relay/tunnel_attach.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/log_text.hpp"
#include "core/spawn.hpp"
#include "relay/admission.hpp"
#include "relay/agent_policy.hpp"
#include "relay/attach_caps.hpp"
#include "relay/connection_gate.hpp"
#include "relay/lease_hold.hpp"
#include "relay/lease_store.hpp"
#include "relay/public_connection.hpp"
#include "relay/publish_request.hpp"
#include "relay/relay_state.hpp"
#include "relay/tcp_routes.hpp"
#include "relay/tcp_service.hpp"
#include "relay/token_revocation.hpp"
#include "relay/visitor_config.hpp"
#include "transport/websocket_client.hpp"

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
    // The client closed the WebSocket saying it is leaving for good
    // (transport::ws_release_lease): its lease's names go at once. Shared
    // with the session's on_closed, which may run after the link is gone.
    std::shared_ptr<bool> release_lease = std::make_shared<bool>(false);
    core::close_registry::handle owned;  // "tunnel" in relay_state::owned while a pump runs

    // Ends both pumps: libssh sees EOF, the WebSocket's socket is closed.
    void close() {
        error_code ignored;
        pair.close(ignored);
        stream->close();
    }
};

// Tunnel pumps start with small buffers (an idle tunnel costs little: 2 KiB
// each measured 49 KiB of relay RSS per idle tunnel against 76 with 16 KiB,
// bench/relay --parts idle; 512 bytes each, shrunk back after the
// handshake, took 4,500 tunnels from 33.7 to N KiB each, bench/relay_load)
// and grow x4 to ws_chunk when reads fill them (bulk transfers: 5 reads).
constexpr std::size_t idle_chunk = 512;

// Grows a pump's buffer x4 when a read filled it, and gives a grown one back
// when a read fits in idle_chunk: the handshake's packets grow both buffers,
// and an idle tunnel should not keep them (keep-alives are ~100 bytes, bulk
// reads fill the buffer).
void fit_to_read(std::vector<char>& buf, std::size_t n) {
    if (n == buf.size() && buf.size() < ws_chunk)
        buf.resize(std::min(ws_chunk, buf.size() * 4));
    else if (n <= idle_chunk && buf.size() > idle_chunk)
        std::vector<char>(idle_chunk).swap(buf);
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
            if (ec == websocket::error::closed &&
                static_cast<std::uint16_t>(link->ws.reason().code) == transport::ws_release_lease)
                *link->release_lease = true;
            spdlog::debug("tunnel WebSocket read ended: {} (close code {})", ec.message(),
                          static_cast<unsigned>(link->ws.reason().code));
            break;
        }
        co_await asio::async_write(link->pair, asio::buffer(buf.data(), n),
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
        fit_to_read(buf, n);  // after the write: a smaller buffer is a new one
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
        co_await link->ws.async_write(asio::buffer(buf.data(), n),
                                      asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
        fit_to_read(buf, n);  // after the write: a smaller buffer is a new one
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
                                 tenant_policy policy, std::string peer, attaching_slot slot,
                                 std::optional<std::string> lease_asked) {
    // The settings as of this attach (a reload applies to later ones).
    const auto live = relay->live();
    const relay_config& cfg = live->config;
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
    const unsigned worker = relay->worker_of(ex);
    link->owned = relay->own(worker, "tunnel", [weak = std::weak_ptr<ws_link<S>>(link)] {
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
    const std::uint64_t tunnel_id = relay->next_tunnel_id++;
    lease_store::grant lease;
    const auto grace = lease_grace_for(cfg, policy);
    if (lease_asked && grace.count() > 0)
        lease = attach_lease(*relay, tenant, *lease_asked, tunnel_id, grace, peer);
    // Gives the lease back when the attach fails before the tunnel runs: a
    // new one goes, a reclaimed one keeps its names for its grace again.
    auto give_back = [&] {
        if (lease.lease) (void)relay->leases->detach(lease.lease, tunnel_id, !lease.reclaimed);
    };
    const std::string lease_id = lease.id;
    const long long grace_s = std::chrono::duration_cast<std::chrono::seconds>(grace).count();
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
    ws.set_option(
        websocket::stream_base::decorator([tenant, url, domain, routing, offers_ssh, lease_id,
                                           grace_s](websocket::response_type& res) {
            res.set(beast::http::field::server, "tunnel-relay");
            res.set("Tunnel-Tenant", tenant);
            res.set("Tunnel-Public-Url", url);
            res.set("Tunnel-Routing", std::string(to_string(routing)));
            if (!domain.empty()) res.set("Tunnel-Domain", domain);
            if (offers_ssh) res.set(beast::http::field::sec_websocket_protocol, "ssh");
            // The lease ID: a secret for this client alone (never logged).
            if (!lease_id.empty()) {
                res.set("Tunnel-Lease", lease_id);
                res.set("Tunnel-Lease-Grace", std::to_string(grace_s));
            }
        }));

    beast::http::request<beast::http::empty_body> req;
    req.method_string(head.method);
    req.target(head.target);
    req.version(head.version);
    for (const auto& f : head.fields) req.insert(f.name, f.value);
    error_code ec;
    co_await ws.async_accept(req, asio::redirect_error(asio::use_awaitable, ec));
    // This frame lives as long as the tunnel: the upgrade's head is done with.
    req = {};
    head = {};
    if (ec) {
        spdlog::info("tunnel attach from {} failed during the WebSocket handshake: {}", peer,
                     ec.message());
        give_back();
        ::close(fds[0]);
        stream->close();
        co_return;
    }
    core::spawn(ex, ws_to_ssh(link), "relay tunnel WebSocket to SSH pump");
    core::spawn(ex, ssh_to_ws(link), "relay tunnel SSH to WebSocket pump");

    auto t = std::make_shared<tunnel_entry>();
    t->id = tunnel_id;
    t->lease = lease.lease;
    t->lease_route = lease.route_id;
    t->worker = worker;
    t->policy = policy;
    t->peer = peer;
    t->attached_at = std::chrono::system_clock::now();
    t->breaker = std::make_unique<pool::circuit_breaker>(
        pool::breaker_settings{cfg.breaker.failures, cfg.breaker.cooldown});
    t->idle = std::make_unique<channel_pool>(
        ex,
        channel_pool_options{cfg.limits.idle_channels_per_name, cfg.limits.idle_channel_timeout});

    ssh::server_options so;
    so.user = tenant;
    so.keepalive_interval = cfg.liveness.ping_interval;
    so.channel_buffer_limit = cfg.limits.max_channel_buffer_bytes;
    so.session_buffer_limit = cfg.limits.max_tunnel_buffer_bytes;
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
        if (is_tcp_publish(address)) return publish_tcp(r, tt, address, port);  // raw TCP
        // The bind address carries the name and who may call it
        // (publish_request.hpp); the operator's visitors: entry wins.
        auto request = parse_publish_request(address);
        // The tenant's cap on names, over all its tunnels (a name this tunnel
        // publishes already is a re-request, not a new name).
        if (request) {
            const auto a =
                check_tenant_names(tt->policy, request->name, names_of(*r, tt->policy.tenant),
                                   tt->names.count(request->name) > 0);
            if (!a.admitted()) {
                count_refusal(*r, a);
                r->metrics.tenant_limits.with({"names"}).inc();
                r->metrics.forwards_refused.with({tt->policy.tenant}).inc();
                d.reason = a.message;
                spdlog::warn("tunnel {} ({}): publish refused: {}", tt->id, tt->policy.tenant,
                             d.reason);
                r->audit("publish_refused", {{"tenant", tt->policy.tenant},
                                             {"name", request->name},
                                             {"error", a.code},
                                             {"reason", d.reason},
                                             {"peer", tt->peer}});
                return d;
            }
        }
        auto bound = [&]() -> core::result<std::uint32_t> {
            if (!request) return tl::unexpected(request.error());
            auto access = resolve_access(
                *request, tt->policy.access,
                configured_access(r->live()->config.visitors, tt->policy.tenant, request->name));
            if (!access) return tl::unexpected(access.error());
            if (access->mode == access_mode::token && !r->visitor_tokens)
                return core::fail(core::errc::denied,
                                  "access token needs visitor tokens, and this relay has no "
                                  "visitors.secret_file: ask its operator, or choose another mode");
            auto published = r->publish(tt, request->name, port, access->describe());
            if (published) {
                name = request->name;
                tt->access[name] = std::move(*access);
            }
            return published;
        }();
        if (!bound) {
            r->metrics.forwards_refused.with({tt->policy.tenant}).inc();
            d.reason = core::log_text(bound.error().message, 256);
            spdlog::warn("tunnel {} ({}): publish refused: {}", tt->id, tt->policy.tenant,
                         d.reason);
            r->audit("publish_refused",
                     {{"tenant", tt->policy.tenant},
                      {"name", core::log_text(address.substr(0, address.find(';')), 64)},
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
        if (is_tcp_publish(address)) return unpublish_tcp(*r, *tt, address);
        // The cancel repeats the bind address of the forward ("llm;access=token").
        std::string name = address.substr(0, address.find(';'));
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        r->unpublish(*tt, name);
        tt->names.erase(name);
        tt->access.erase(name);
        r->audit("unpublish", {{"tenant", tt->policy.tenant}, {"name", core::log_text(name, 64)}});
    };
    handlers.on_agent_request = agent_request_handler(weak_relay, weak);
    handlers.on_closed = [weak, weak_relay, weak_link,
                          released = link->release_lease](const core::error& why) {
        if (auto l = weak_link.lock()) {
            error_code ignored;
            l->pair.close(ignored);  // ssh_to_ws then closes the WebSocket
        }
        auto tt = weak.lock();
        auto r = weak_relay.lock();
        if (!tt || !r) return;
        if (*released) tt->release_lease = true;
        tt->closing = true;
        if (tt->expiry) tt->expiry->cancel();
        for (const auto& [name, port] : tt->names)
            r->metrics.breaker_open.with({tt->policy.tenant, name}).set(0);
        if (why.code == core::errc::resource_exhausted) {
            // The client sent past the SSH window (server_session closed it).
            r->metrics.tunnel_overflows.with({tt->policy.tenant}).inc();
            limit_hit(*r, "tunnel_buffer");
            spdlog::warn("tunnel {} ({}) from {} closed: {}", tt->id, tt->policy.tenant, tt->peer,
                         why.message);
            r->audit("tunnel_overflow",
                     {{"tenant", tt->policy.tenant}, {"peer", tt->peer}, {"reason", why.message}});
        }
        if (r->worker(tt->worker).tunnels.count(tt->id)) {
            r->metrics.detaches.with({}).inc();
            spdlog::info("tunnel {} ({}) detached: {}", tt->id, tt->policy.tenant, why.message);
            r->audit("detach",
                     {{"tenant", tt->policy.tenant}, {"peer", tt->peer}, {"reason", why.message}});
        }
        r->remove(tt->id, tt->worker);
        r->metrics.active_tunnels.with({}).set(static_cast<double>(r->table()->tunnels.size()));
    };

    auto session =
        co_await ssh::server_session::accept(ex, fds[0], relay->identity, so, std::move(handlers));
    if (!session) {
        relay->metrics.attaches.with({"failed"}).inc();
        spdlog::info("tunnel attach from {} ({}) failed: {}", peer, tenant,
                     session.error().message);
        relay->audit("attach_failed",
                     {{"tenant", tenant}, {"peer", peer}, {"reason", session.error().message}});
        link->close_code = websocket::close_code::policy_error;
        link->close_reason = session.error().message.substr(0, 120);
        error_code ignored;
        link->pair.close(ignored);
        for (const auto& [name, port] : t->names) relay->unpublish(*t, name);
        relay->remove(t->id, t->worker);
        give_back();
        co_return;
    }
    t->ssh = *session;
    relay->add(t);
    slot.release();  // counted in the tunnel list from here
    relay->metrics.attaches.with({"attached"}).inc();
    relay->metrics.active_tunnels.with({}).set(static_cast<double>(relay->table()->tunnels.size()));
    const std::string lease_text = describe(lease);
    spdlog::info("tunnel {} attached: tenant {} from {} (lease {})", t->id, tenant, peer,
                 lease_text);
    relay->audit("attach", {{"tenant", tenant},
                            {"peer", peer},
                            {"tunnel", std::to_string(t->id)},
                            {"lease", lease_text}});

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
    t->owned = relay->own(worker, "attached tunnel", [weak] {
        if (auto tt = weak.lock(); tt && tt->close) tt->close("relay closed");
    });
    if (relay->stopping && !t->closing) t->close("relay shutting down");
    // Revoked while it attached (after the check above, before it was in
    // the list the revocation swept): closed now.
    if (is_revoked(*relay, t->policy.id) && !t->closing) close_revoked(*relay, *t);
}

}  // namespace

// Authenticates an attach and hands the stream to run_tunnel.
asio::awaitable<void> attach(std::shared_ptr<relay_state> relay, std::shared_ptr<public_conn> conn,
                             http_head head) {
    const std::string peer = fmt::format("{}:{}", conn->peer_ip, conn->peer_port);
    error_code addr_ec;
    const auto address = asio::ip::make_address(conn->peer_ip, addr_ec);
    const std::string source = addr_ec ? conn->peer_ip : source_key(address);
    // A source with too many refusals in the window gets 429 before its token
    // is looked at, and no log or audit record per attempt (one summary per
    // window instead: report_attach_refusals).
    if (const auto v = relay->attach_refusals.check(source); v.throttled) {
        relay->metrics.attach_throttled.with({}).inc();
        relay->metrics.attaches.with({"throttled"}).inc();
        limit_hit(*relay, "attach_refusals");
        std::string answer = error_response(429, "too_many_refusals",
                                            fmt::format("too many refused attach attempts from "
                                                        "this address; retry after {} s",
                                                        v.retry_after_seconds()),
                                            v.retry_after_seconds());
        co_await send(*conn, std::move(answer));
        conn->close();
        co_return;
    }
    // `message` goes into the response; `detail` (default: the message) only
    // into the log and the audit log, escaped and capped.
    auto refuse = [&](int status, std::string code, std::string message, std::string detail = {}) {
        relay->metrics.attaches.with({"refused"}).inc();
        const std::string logged = core::log_text(detail.empty() ? message : detail, 256);
        spdlog::info("tunnel attach from {} refused: {}", peer, logged);
        relay->audit("attach_refused", {{"peer", peer}, {"error", code}, {"reason", logged}});
        if (relay->attach_refusals.record_refusal(source))
            spdlog::warn(
                "tunnel attach from {}: {} refusals within {} s; further attempts from it are "
                "answered 429 without a log or audit record until the window ends",
                source, relay->config.limits.attach_refusals_per_ip,
                std::chrono::duration_cast<std::chrono::seconds>(
                    relay->config.limits.attach_refusal_window)
                    .count());
        return error_response(status, code, message,
                              status == 429 ? std::optional<long long>(5) : std::nullopt);
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
    auto policy = relay->live()->verifier.verify(token);
    if (!policy) {
        co_await send(*conn, refuse(401, std::string(to_string(policy.error().code)),
                                    policy.error().message, policy.error().detail));
        conn->close();
        co_return;
    }
    if (is_revoked(*relay, policy->id)) {
        co_await send(*conn,
                      refuse(401, "token_revoked",
                             fmt::format("this token (jti {}) was revoked by the relay's operator; "
                                         "get a new token",
                                         policy->id),
                             fmt::format("token of tenant {} (jti {}) is revoked", policy->tenant,
                                         core::log_text(policy->id, 64))));
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
    // The tenant's cap and the slot that counts this attach, in one step
    // under the lock: concurrent attaches on other workers see it.
    std::optional<attaching_slot> slot;
    admission capped;
    {
        std::lock_guard lock(relay->tenants_mutex);
        capped = check_tenant_tunnels(*policy, tunnels_of(*relay, policy->tenant));
        if (capped.admitted()) slot.emplace(relay, policy->tenant);
    }
    if (const auto& a = capped; !a.admitted()) {
        count_refusal(*relay, a);
        relay->metrics.tenant_limits.with({"tunnels"}).inc();
        std::string answer = refuse(a.status, a.code, a.message);
        co_await send(*conn, std::move(answer));
        conn->close();
        co_return;
    }
    // Fail closed: an attach the audit log cannot record does not happen.
    if (!relay->audit("attach_authorized", {{"tenant", policy->tenant}, {"peer", peer}})) {
        co_await send(*conn, refuse(503, "audit_unavailable",
                                    "the relay cannot write its audit log; attach again later"));
        conn->close();
        co_return;
    }
    // Tunnel-Lease: "new", or the lease ID the client kept (anything else
    // is taken as new; the value is never logged).
    std::optional<std::string> lease_asked;
    if (const auto* l = head.find("Tunnel-Lease"))
        lease_asked = valid_lease_id(*l) ? *l : std::string();
    if (auto p = std::dynamic_pointer_cast<tls_stream>(conn->stream))
        co_await run_tunnel(relay, p, std::move(head), std::move(*policy), peer, std::move(*slot),
                            std::move(lease_asked));
    else if (auto q = std::dynamic_pointer_cast<plain_stream>(conn->stream))
        co_await run_tunnel(relay, q, std::move(head), std::move(*policy), peer, std::move(*slot),
                            std::move(lease_asked));
}

}  // namespace tunnel::relay
