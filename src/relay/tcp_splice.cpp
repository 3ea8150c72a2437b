#include "relay/tcp_splice.hpp"

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/log_text.hpp"
#include "core/spawn.hpp"
#include "core/unique_fd.hpp"
#include "core/wake_signal.hpp"
#include "relay/admission.hpp"
#include "relay/client_hello.hpp"
#include "relay/public_route.hpp"
#include "relay/relay_state.hpp"
#include "relay/tcp_routes.hpp"

namespace tunnel::relay {

namespace {

using steady = std::chrono::steady_clock;
using error_code = boost::system::error_code;
using tcp = asio::ip::tcp;

constexpr auto channel_open_timeout = std::chrono::seconds(10);
constexpr std::size_t splice_chunk = 64 * 1024;
// How often a splice re-checks that it should stop (shutdown, tunnel gone).
constexpr auto splice_tick = std::chrono::seconds(1);

// Logs and audits a refused connection (`tcp_refused`).
}  // namespace

void audit_tcp_refusal(relay_state& relay, const std::string& tenant, const std::string& name,
                       const std::string& peer, std::string_view via, std::string_view code,
                       const std::string& reason) {
    spdlog::info("raw TCP connection from {} ({}) to {}/{} refused: {}", peer, via,
                 core::log_text(tenant, 64), core::log_text(name, 64), reason);
    relay.audit("tcp_refused", {{"tenant", core::log_text(tenant, 64)},
                                {"name", core::log_text(name, 64)},
                                {"peer", peer},
                                {"via", std::string(via)},
                                {"error", std::string(code)},
                                {"reason", reason}});
}

namespace {

struct splice_state {
    explicit splice_state(const asio::any_io_executor& ex) : up_done_signal(ex) {}
    bool stop = false;     // shutdown or the other direction failed
    bool up_done = false;  // caller -> channel finished
    core::wake_signal up_done_signal;
};

// Caller -> channel; EOF from the caller becomes the channel's EOF.
asio::awaitable<void> splice_up(std::shared_ptr<splice_state> st, std::shared_ptr<tcp::socket> sock,
                                ssh::server_channel* ch, std::shared_ptr<relay_state> relay,
                                std::shared_ptr<tunnel_entry> t) {
    std::vector<char> buf(splice_chunk);
    bool clean = false;
    while (!st->stop) {
        error_code ec;
        const std::size_t n = co_await sock->async_read_some(
            asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            clean = ec == asio::error::eof;
            break;
        }
        std::string_view left(buf.data(), n);
        while (!left.empty() && !st->stop) {
            if (ch->closed()) {
                st->stop = true;
                break;
            }
            auto w = ch->write_some(left);
            if (!w) {
                st->stop = true;
                break;
            }
            left.remove_prefix(*w);
            if (!left.empty()) (void)co_await ch->wait_writable(steady::now() + splice_tick);
        }
        t->bytes_to_origin += n - left.size();
        relay->metrics.bytes.with({t->policy.tenant, "to_origin"})
            .inc(static_cast<double>(n - left.size()));
    }
    if (clean && !st->stop && !ch->closed()) ch->send_eof();
    if (!clean) st->stop = true;
    st->up_done = true;
    st->up_done_signal.notify();
}

// Channel -> caller, then waits for splice_up; the caller's side is shut
// for sending when the service sent EOF.
asio::awaitable<void> splice(std::shared_ptr<relay_state> relay, std::shared_ptr<tunnel_entry> t,
                             std::shared_ptr<tcp::socket> sock,
                             std::unique_ptr<ssh::server_channel> ch,
                             std::shared_ptr<splice_state> st) {
    auto ex = co_await asio::this_coro::executor;
    core::spawn(ex, splice_up(st, sock, ch.get(), relay, t), "relay raw TCP caller to tunnel");
    std::string out;
    while (!st->stop) {
        auto readable = ch->readable();
        if (!readable.empty()) {
            out.assign(readable.data(), std::min(readable.size(), splice_chunk));
            ch->consume(out.size());
            error_code ec;
            co_await asio::async_write(*sock, asio::buffer(out),
                                       asio::redirect_error(asio::use_awaitable, ec));
            if (ec) {
                st->stop = true;
                break;
            }
            t->bytes_from_origin += out.size();
            relay->metrics.bytes.with({t->policy.tenant, "from_origin"})
                .inc(static_cast<double>(out.size()));
            continue;
        }
        if (ch->eof() || ch->closed()) break;
        (void)co_await ch->wait_readable(steady::now() + splice_tick);
    }
    error_code ignored;
    if (ch->closed() || st->stop) {
        st->stop = true;
        sock->close(ignored);  // ends splice_up's read
    } else {
        sock->shutdown(tcp::socket::shutdown_send, ignored);
    }
    while (!st->up_done) {
        (void)co_await st->up_done_signal.wait(steady::now() + splice_tick);
        if (ch->closed() && !st->up_done) {
            st->stop = true;
            sock->close(ignored);
        }
    }
    sock->close(ignored);
    ch->close();
}

// Serves one raw TCP connection for tenant/name, on the worker of the
// tunnel that publishes it: the checks, then a forwarded-tcpip channel.
asio::awaitable<void> carry(std::shared_ptr<relay_state> relay, tcp::socket raw, tcp::endpoint peer,
                            std::string tenant, std::string name, std::string via,
                            connection_gate::ticket ticket) {
    auto ex = co_await asio::this_coro::executor;
    auto sock = std::make_shared<tcp::socket>(std::move(raw));
    const std::string peer_text = fmt::format("{}:{}", peer.address().to_string(), peer.port());
    const bool sni = via == "sni";
    auto refuse = [&](std::string_view code, const std::string& reason) -> asio::awaitable<void> {
        audit_tcp_refusal(*relay, tenant, name, peer_text, via, code, reason);
        if (sni) {
            const std::string alert = tls_alert(code == "tunnel_offline" ? alert_unrecognized_name
                                                                         : alert_handshake_failure);
            error_code ec;
            co_await asio::async_write(*sock, asio::buffer(alert),
                                       asio::redirect_error(asio::use_awaitable, ec));
        }
        error_code ignored;
        sock->close(ignored);
    };
    error_code ec;
    sock->set_option(tcp::no_delay(true), ec);
    const auto route = relay->tcp->find(tenant, name);
    auto t = route ? route->tunnel.lock() : nullptr;
    const unsigned here = relay->worker_of(ex);
    if (!t || t->closing || !t->ssh || t->worker != here) {
        const std::string why = fmt::format(
            "no tunnel of tenant {} publishes the raw TCP name {:?} right now: start "
            "`tunnel connect` with --expose-tcp {}=HOST:PORT",
            tenant, name, name);
        co_await refuse("tunnel_offline", why);
        co_return;
    }
    // The checks HTTP requests pass (admission.hpp), in the same order.
    const public_route pr{tenant, name, std::string(), sni};
    admission a = check_policy(pr, t->policy, std::chrono::system_clock::now());
    if (a.admitted()) a = check_rates(relay->rates(), relay->config.limits, pr, t->policy);
    if (a.admitted()) a = check_streams(pr, *t);
    if (!a.admitted()) {
        count_refusal(*relay, a);
        co_await refuse(a.code, a.message);
        co_return;
    }
    const unsigned cap = relay->config.tcp.max_connections_per_tenant;
    if (!relay->tcp->open_connection(tenant, cap)) {
        limit_hit(*relay, "tcp_connections");
        const std::string why = fmt::format(
            "tenant {} has {} raw TCP connections open (its limit, "
            "tcp.max_connections_per_tenant)",
            tenant, cap);
        co_await refuse("connection_limit", why);
        co_return;
    }
    ++t->active_streams;
    ++t->requests;
    struct release_guard {
        std::shared_ptr<relay_state> relay;
        std::shared_ptr<tunnel_entry> t;
        std::string tenant;
        ~release_guard() {
            --t->active_streams;
            relay->tcp->close_connection(tenant);
        }
    } guard{relay, t, tenant};
    ticket.authenticated();
    auto ch =
        co_await t->ssh->open_forwarded(route->address, route->forward, peer.address().to_string(),
                                        peer.port(), steady::now() + channel_open_timeout);
    if (!ch) {
        const std::string why =
            fmt::format("the tunnel could not open a channel to the service: {}",
                        core::log_text(ch.error().message, 200));
        co_await refuse("origin_unreachable", why);
        co_return;
    }
    spdlog::debug("raw TCP connection from {} ({}) to {}/{} spliced", peer_text, via, tenant, name);
    auto st = std::make_shared<splice_state>(ex);
    auto owned = relay->own(
        here, "raw TCP connection",
        [weak = std::weak_ptr<splice_state>(st), wsock = std::weak_ptr<tcp::socket>(sock)] {
            if (auto s = weak.lock()) s->stop = true;
            if (auto k = wsock.lock()) {
                error_code ignored;
                k->close(ignored);
            }
        });
    co_await splice(relay, t, sock, std::move(*ch), st);
}

// Moves an accepted socket to worker `target` and carries it there.
void carry_on(const std::shared_ptr<relay_state>& relay, unsigned target, tcp::socket sock,
              tcp::endpoint peer, std::string tenant, std::string name, std::string via,
              connection_gate::ticket ticket) {
    error_code ec;
    auto fd = std::make_shared<core::unique_fd>(sock.release(ec));
    if (ec) {
        spdlog::warn("raw TCP connection from {}: cannot move it to worker {}: {}",
                     peer.address().to_string(), target, ec.message());
        return;
    }
    auto& io = relay->worker(target).io;
    core::spawn(
        io,
        [](std::shared_ptr<relay_state> r, std::shared_ptr<core::unique_fd> f, tcp::endpoint p,
           std::string tn, std::string n, std::string v,
           connection_gate::ticket tk) -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            tcp::socket s(ex);
            error_code e;
            s.assign(p.protocol(), f->get(), e);
            if (e) co_return;  // `f` closes it
            (void)f->release();
            co_await carry(r, std::move(s), p, std::move(tn), std::move(n), std::move(v),
                           std::move(tk));
        }(relay, std::move(fd), peer, std::move(tenant), std::move(name), std::move(via),
                                       std::move(ticket)),
        "relay raw TCP connection (handed over)");
}

}  // namespace

void carry_tcp(const std::shared_ptr<relay_state>& relay, unsigned worker, tcp::socket sock,
               tcp::endpoint peer, std::string tenant, std::string name, std::string via,
               connection_gate::ticket ticket) {
    const auto route = relay->tcp->find(tenant, name);
    const unsigned target = route ? route->worker : worker;
    if (target == worker) {
        core::spawn(relay->worker(worker).io,
                    carry(relay, std::move(sock), peer, std::move(tenant), std::move(name),
                          std::move(via), std::move(ticket)),
                    "relay raw TCP connection");
        return;
    }
    carry_on(relay, target, std::move(sock), peer, std::move(tenant), std::move(name),
             std::move(via), std::move(ticket));
}

}  // namespace tunnel::relay
