#include "relay/tcp_service.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "core/log_text.hpp"
#include "core/spawn.hpp"
#include "relay/admission.hpp"
#include "relay/client_hello.hpp"
#include "relay/public_route.hpp"
#include "relay/relay_state.hpp"
#include "relay/tcp_routes.hpp"
#include "relay/tcp_splice.hpp"

namespace tunnel::relay {

namespace {

using steady = std::chrono::steady_clock;
using error_code = boost::system::error_code;
using tcp = asio::ip::tcp;

// A raw TCP name's listener, on its tunnel's worker.
struct tcp_listener {
    explicit tcp_listener(asio::io_context& io) : acceptor(io) {}
    tcp::acceptor acceptor;
    core::close_registry::handle owned;  // a shutdown closes it
    void close() {
        error_code ignored;
        acceptor.close(ignored);
    }
};

// Where the ports listen: tcp.bind, else the host of `listen`, else all.
asio::ip::address bind_address(const relay_config& cfg) {
    error_code ec;
    if (!cfg.tcp.bind.empty()) {
        auto a = asio::ip::make_address(cfg.tcp.bind, ec);
        if (!ec) return a;
    }
    if (!cfg.listen.host.empty()) {
        auto a = asio::ip::make_address(
            cfg.listen.host == "localhost" ? std::string("127.0.0.1") : cfg.listen.host, ec);
        if (!ec) return a;
    }
    return asio::ip::address_v4::any();
}

// Opens a listener on `port`; nullptr when it cannot (the error in `why`).
std::shared_ptr<tcp_listener> listen_on(asio::io_context& io, const asio::ip::address& address,
                                        std::uint16_t port, std::string& why) {
    auto l = std::make_shared<tcp_listener>(io);
    error_code ec;
    const tcp::endpoint ep(address, port);
    l->acceptor.open(ep.protocol(), ec);
    if (!ec) l->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    // A tunnel re-attached with its lease listens on the port before the
    // relay has closed the old tunnel's listener (it goes a moment later).
    if (!ec) {
        int one = 1;
        if (::setsockopt(l->acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) !=
            0)
            ec = error_code(errno, boost::system::system_category());
    }
    if (!ec) l->acceptor.bind(ep, ec);
    if (!ec) l->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        why = ec.message();
        return nullptr;
    }
    return l;
}

// Accepts on a raw TCP name's port until the listener closes.
asio::awaitable<void> accept_tcp(std::shared_ptr<relay_state> relay,
                                 std::shared_ptr<tcp_listener> l, std::string tenant,
                                 std::string name) {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer backoff(ex);
    for (;;) {
        error_code ec;
        tcp::socket sock =
            co_await l->acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            if (ec == asio::error::operation_aborted || !l->acceptor.is_open() || relay->stopping)
                break;
            // Out of descriptors: the next accept fails at once too.
            backoff.expires_after(std::chrono::milliseconds(50));
            co_await backoff.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            continue;
        }
        const auto peer = sock.remote_endpoint(ec);
        if (ec) continue;
        auto ticket = relay->connections.admit(source_key(peer.address()));
        if (!ticket) {
            relay->metrics.connections_refused.with({to_string(ticket.error())}).inc();
            limit_hit(*relay, to_string(ticket.error()));
            sock.close(ec);
            continue;
        }
        carry_tcp(relay, relay->worker_of(ex), std::move(sock), peer, tenant, name, "port",
                  std::move(*ticket));
    }
}

bool held_by_lease(relay_state& relay, const std::string& tenant, const std::string& name) {
    return relay.leases->held(tenant, name).lease != 0;
}

}  // namespace

bool is_tcp_publish(std::string_view address) noexcept {
    return address.size() > tcp_publish_suffix.size() &&
           address.substr(address.size() - tcp_publish_suffix.size()) == tcp_publish_suffix;
}

std::string encode_tcp_publish(std::string_view name) {
    return std::string(name) + std::string(tcp_publish_suffix);
}

ssh::forward_decision publish_tcp(const std::shared_ptr<relay_state>& relay,
                                  const std::shared_ptr<tunnel_entry>& t,
                                  const std::string& address, std::uint32_t port) {
    ssh::forward_decision d;
    auto& r = *relay;
    const std::string& tenant = t->policy.tenant;
    const std::string raw = address.substr(0, address.size() - tcp_publish_suffix.size());
    auto refuse = [&](std::string_view code, std::string reason) {
        r.metrics.forwards_refused.with({tenant}).inc();
        d.reason = core::log_text(reason, 256);
        spdlog::warn("tunnel {} ({}): raw TCP publish refused: {}", t->id, tenant, d.reason);
        r.audit("publish_refused", {{"tenant", tenant},
                                    {"name", core::log_text(raw, 64)},
                                    {"proto", "tcp"},
                                    {"error", std::string(code)},
                                    {"reason", d.reason},
                                    {"peer", t->peer}});
        return d;
    };
    if (!r.tcp || !r.config.tcp.ports_enabled())
        return refuse("tcp_off",
                      "this relay does not publish raw TCP: its operator adds a tcp: section with "
                      "ports (and optionally sni_domain) to its config");
    auto name_ok = normalize_label(raw, "service name");
    if (!name_ok) return refuse("bad_name", name_ok.error().message);
    const std::string name = *name_ok;
    if (std::chrono::system_clock::now() >= t->policy.expires)
        return refuse("token_expired", "the tunnel's token has expired");
    if (!may_publish(t->policy, name))
        return refuse("policy",
                      fmt::format("the token of tenant {} does not allow the name {:?} (allowed: "
                                  "{})",
                                  tenant, name, fmt::join(t->policy.allow, ", ")));
    const auto table = r.table();
    if (table->routes.count({tenant, name}))
        return refuse("name_taken",
                      fmt::format("{:?} is published as an HTTP name of tenant {}; a name is "
                                  "either HTTP or raw TCP",
                                  name, tenant));
    const auto existing = r.tcp->find(tenant, name);
    const bool mine = existing && existing->tunnel_id == t->id;
    if (existing && !mine) {
        auto other = existing->tunnel.lock();
        const bool taking_over = t->lease != 0 && other && other->lease == t->lease;
        if (other && !other->closing && !taking_over)
            return refuse("name_taken",
                          fmt::format("{:?} is already published by another tunnel of tenant {}",
                                      name, tenant));
    }
    {
        unsigned names = 0;
        for (auto it = table->routes.lower_bound({tenant, std::string()});
             it != table->routes.end() && it->first.first == tenant; ++it)
            ++names;
        names += r.tcp->names_of(tenant);
        const auto a = check_tenant_names(t->policy, name, names, mine);
        if (!a.admitted()) {
            count_refusal(r, a);
            r.metrics.tenant_limits.with({"names"}).inc();
            return refuse(a.code, a.message);
        }
    }
    if (mine) {  // asked again (a retried request): the same answer
        d.accepted = true;
        d.bound_port = existing->port;
        return d;
    }
    const bool held_before = t->lease != 0 && r.leases->held(tenant, name).lease == t->lease;
    if (auto claimed = r.leases->claim(t->lease, tenant, name); !claimed)
        return refuse("leased", claimed.error().message);
    auto give_back = [&] {
        if (!held_before) r.leases->release(t->lease, tenant, name);
    };

    auto& io = r.worker(t->worker).io;
    const auto address_to_bind = bind_address(r.config);
    std::shared_ptr<tcp_listener> listener;
    std::string why;
    auto usable = [&](std::uint16_t p) {
        listener = listen_on(io, address_to_bind, p, why);
        return listener != nullptr;
    };
    const auto wanted = static_cast<std::uint16_t>(port <= 65535 ? port : 0);
    auto assigned = r.tcp->assign(
        tenant, name, wanted,
        [&r](const std::string& tn, const std::string& n) { return held_by_lease(r, tn, n); },
        usable);
    if (!assigned) {
        give_back();
        if (assigned.error().code == core::errc::resource_exhausted) {
            limit_hit(r, "tcp_ports");
            return refuse("ports_exhausted", assigned.error().message);
        }
        return refuse("port_refused", assigned.error().message);
    }
    if (!listener && !usable(*assigned)) {
        r.tcp->abandon(tenant, name);
        give_back();
        return refuse("port_unavailable", fmt::format("cannot listen on {}:{}: {}",
                                                      address_to_bind.to_string(), *assigned, why));
    }
    // The previous tunnel of this lease (not noticed as gone yet) stops
    // listening on its worker.
    if (existing && existing->close_listener) {
        auto close = existing->close_listener;
        asio::post(r.worker(existing->worker).io, [close] { close(); });
    }
    tcp_route route;
    route.tenant = tenant;
    route.name = name;
    route.tunnel = t;
    route.tunnel_id = t->id;
    route.worker = t->worker;
    route.port = *assigned;
    route.address = address;
    route.forward = *assigned;
    route.close_listener = [weak = std::weak_ptr<tcp_listener>(listener)] {
        if (auto l = weak.lock()) l->close();
    };
    if (existing && !mine) (void)r.tcp->unpublish(tenant, name, existing->tunnel_id);
    if (auto published = r.tcp->publish(route); !published) {
        listener->close();
        r.tcp->abandon(tenant, name);
        give_back();
        return refuse("name_taken", published.error().message);
    }
    listener->owned =
        r.own(t->worker, "raw TCP listener", [weak = std::weak_ptr<tcp_listener>(listener)] {
            if (auto l = weak.lock()) l->close();
        });
    core::spawn(io, accept_tcp(relay, listener, tenant, name), "relay raw TCP listener");
    spdlog::info("tunnel {} ({}): published raw TCP {} on port {}", t->id, tenant, name, *assigned);
    r.audit("publish", {{"tenant", tenant},
                        {"name", name},
                        {"proto", "tcp"},
                        {"port", std::to_string(*assigned)},
                        {"peer", t->peer}});
    d.accepted = true;
    d.bound_port = *assigned;
    return d;
}

void unpublish_tcp(relay_state& relay, const tunnel_entry& t, const std::string& address) {
    if (!relay.tcp) return;
    std::string name = address.substr(0, address.size() - tcp_publish_suffix.size());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto route = relay.tcp->unpublish(t.policy.tenant, name, t.id);
    if (!route) return;
    if (route->close_listener) route->close_listener();
    relay.tcp->release_port(t.policy.tenant, name);
    relay.leases->release(t.lease, t.policy.tenant, name);
    relay.audit(
        "unpublish",
        {{"tenant", t.policy.tenant}, {"name", core::log_text(name, 64)}, {"proto", "tcp"}});
}

void tcp_tunnel_gone(relay_state& relay, const tunnel_entry& t) {
    if (!relay.tcp) return;
    for (auto& route : relay.tcp->remove_tunnel(t.id)) {
        if (route.close_listener) route.close_listener();
        // Without a lease (or released on purpose) the port goes now;
        // otherwise it waits for the lease (tcp_routes::assign frees it).
        if (t.lease == 0 || t.release_lease) relay.tcp->release_port(route.tenant, route.name);
    }
}

asio::awaitable<bool> route_tls_by_sni(std::shared_ptr<relay_state> relay, unsigned worker,
                                       tcp::socket& sock, const tcp::endpoint& peer,
                                       connection_gate::ticket& ticket) {
    const auto& cfg = relay->config;
    if (!relay->tcp || !cfg.tcp.sni_enabled()) co_return false;
    auto ex = co_await asio::this_coro::executor;
    const auto deadline = steady::now() + cfg.tcp.client_hello_timeout;
    const std::string peer_text = fmt::format("{}:{}", peer.address().to_string(), peer.port());
    // Whatever the relay's own TLS (or HTTP) does with what is not ours.
    const bool own_tls = relay->tls_context.has_value();
    std::string buf(max_client_hello_bytes, '\0');
    // Cancels the peek at the deadline; `over` once the peeking is done (a
    // late handler must not cancel what the socket does next).
    struct peek_clock {
        bool timed_out = false;
        bool over = false;
    };
    auto clock = std::make_shared<peek_clock>();
    asio::steady_timer timer(ex);
    timer.expires_at(deadline);
    timer.async_wait([&sock, clock](error_code e) {
        if (e || clock->over) return;
        clock->timed_out = true;
        error_code ignored;
        sock.cancel(ignored);
    });
    bool& timed_out = clock->timed_out;
    client_hello hello;
    std::size_t seen = 0;
    auto poll = std::chrono::milliseconds(5);
    for (;;) {
        error_code ec;
        // Peeked, not read: a connection that is not ours is served as if
        // nothing had happened.
        const std::size_t n =
            co_await sock.async_receive(asio::buffer(buf), tcp::socket::message_peek,
                                        asio::redirect_error(asio::use_awaitable, ec));
        if (timed_out || ec) {
            clock->over = true;
            timer.cancel();
            if (seen == 0) co_return false;  // nothing sent: the usual path deals with it
            if (!timed_out) {                // the caller went away mid-ClientHello
                sock.close(ec);
                co_return true;
            }
            break;
        }
        hello = parse_client_hello(std::string_view(buf.data(), n));
        if (hello.result != client_hello::status::need_more) break;
        if (n == 0) break;  // EOF
        // The rest of the record has not arrived: the next peek would
        // return at once, so wait a little before it (a slow sender).
        if (n == seen) poll = std::min(poll * 2, std::chrono::milliseconds(100));
        seen = n;
        asio::steady_timer pause(ex);
        pause.expires_after(std::min<steady::duration>(poll, deadline - steady::now()));
        co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        if (timed_out || steady::now() >= deadline) break;
    }
    clock->over = true;
    timer.cancel();
    if (hello.result == client_hello::status::not_tls) co_return false;
    auto refuse = [&](std::string_view code, const std::string& reason, unsigned char alert,
                      const std::string& tenant = {},
                      const std::string& name = {}) -> asio::awaitable<bool> {
        audit_tcp_refusal(*relay, tenant, name, peer_text, "sni", code, reason);
        relay->metrics.bad_requests.with({}).inc();
        const std::string record = tls_alert(alert);
        error_code ec;
        sock.non_blocking(true, ec);
        (void)sock.send(asio::buffer(record), 0, ec);  // best effort; never waits
        sock.close(ec);
        co_return true;
    };
    if (hello.result == client_hello::status::need_more) {
        const std::string why = fmt::format(
            "no complete ClientHello within tcp.client_hello_timeout ({} ms; {} bytes arrived)",
            cfg.tcp.client_hello_timeout.count(), seen);
        co_return co_await refuse("client_hello_timeout", why, alert_handshake_failure);
    }
    if (hello.result == client_hello::status::malformed)
        co_return co_await refuse("bad_client_hello", hello.problem, alert_handshake_failure);
    // A well-formed ClientHello: ours when its name is under sni_domain.
    auto routed = route_by_host(hello.server_name, cfg.tcp.sni_domain, "/");
    const bool same_domain = !cfg.domain.empty() && cfg.domain == cfg.tcp.sni_domain;
    if (!routed) {
        if (own_tls) co_return false;
        const std::string why =
            hello.server_name.empty()
                ? std::string("the ClientHello names no server (SNI)")
                : fmt::format("the server name {:?} is not <name>--<tenant>.{}",
                              core::log_text(hello.server_name, 128), cfg.tcp.sni_domain);
        co_return co_await refuse("no_route", why, alert_unrecognized_name);
    }
    if (!*routed) {
        if (own_tls && same_domain) co_return false;
        const std::string why = routed->error().message;
        co_return co_await refuse("bad_route", why, alert_unrecognized_name);
    }
    const auto& pr = **routed;
    const auto route = relay->tcp->find(pr.tenant, pr.name);
    if (!route) {
        if (own_tls && same_domain) co_return false;  // an HTTPS host route
        const std::string why = fmt::format(
            "no tunnel of tenant {} publishes the raw TCP name {:?} right now", pr.tenant, pr.name);
        co_return co_await refuse("tunnel_offline", why, alert_unrecognized_name, pr.tenant,
                                  pr.name);
    }
    carry_tcp(relay, worker, std::move(sock), peer, pr.tenant, pr.name, "sni", std::move(ticket));
    co_return true;
}

std::vector<observe::admin_endpoint> tcp_endpoints(const std::shared_ptr<relay_state>& state) {
    std::weak_ptr<relay_state> weak = state;
    auto handler = [weak](const observe::admin_request&) {
        using observe::admin_response;
        auto st = weak.lock();
        if (!st) return admin_response::error(503, "stopped", "the relay has stopped");
        nlohmann::json j;
        const auto& cfg = st->config.tcp;
        j["enabled"] = st->tcp != nullptr;
        if (cfg.ports_enabled()) j["ports"] = fmt::format("{}-{}", cfg.first_port, cfg.last_port);
        if (cfg.sni_enabled()) j["sni_domain"] = cfg.sni_domain;
        nlohmann::json list = nlohmann::json::array();
        if (st->tcp)
            for (const auto& a : st->tcp->assignments()) {
                nlohmann::json e{{"tenant", a.tenant},
                                 {"name", a.name},
                                 {"port", a.port},
                                 {"published", a.published},
                                 {"tenant_connections", a.connections}};
                if (a.published) e["tunnel"] = a.tunnel;
                if (cfg.sni_enabled())
                    e["sni"] = fmt::format("{}--{}.{}", a.name, a.tenant, cfg.sni_domain);
                list.push_back(std::move(e));
            }
        j["names"] = std::move(list);
        return admin_response::json(j.dump(2) + "\n");
    };
    return {
        {"/api/v1/tcp", "raw TCP names: assigned ports, SNI names, connections (JSON)", handler}};
}

}  // namespace tunnel::relay
