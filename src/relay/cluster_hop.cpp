#include "relay/cluster_hop.hpp"

#include <chrono>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/log_text.hpp"
#include "core/spawn.hpp"
#include "core/wake_signal.hpp"
#include "relay/hop_preamble.hpp"
#include "relay/public_connection.hpp"
#include "relay/relay_config.hpp"
#include "relay/relay_state.hpp"

namespace tunnel::relay {

namespace {

using steady = std::chrono::steady_clock;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

constexpr std::size_t hop_read_chunk = 64 * 1024;

// The sending relay's end of one hop: the socket to the owner, closed by
// either pump (or by a shutdown, through relay_state::owned).
struct hop_link {
    explicit hop_link(const asio::any_io_executor& ex) : sock(ex), up_signal(ex) {}
    tcp::socket sock;
    bool closed = false;
    bool up_done = false;
    std::uint64_t up_bytes = 0;   // caller bytes the pump sent after the request's head
    core::wake_signal up_signal;  // the caller -> owner pump ended

    void close() {
        if (closed) return;
        closed = true;
        error_code ignored;
        sock.shutdown(tcp::socket::shutdown_both, ignored);
        sock.close(ignored);
    }
};

// Caller -> owner: what the caller sends, raw, until either side ends. A
// caller that hangs up is passed on as EOF (the owner cancels the stream
// upstream, as it does for its own callers).
asio::awaitable<void> pump_up(std::shared_ptr<public_conn> conn, std::shared_ptr<hop_link> link) {
    while (!link->closed) {
        const std::size_t n = conn->buffered().size();
        if (n == 0) {
            if (conn->in_eof || conn->closed) {
                error_code ignored;
                if (!link->closed) link->sock.shutdown(tcp::socket::shutdown_send, ignored);
                break;
            }
            (void)co_await conn->data_signal.wait(steady::time_point::max());
            continue;
        }
        // A copy: the reader may grow (and move) conn's buffer during the write.
        const std::string chunk(conn->buffered());
        error_code ec;
        co_await asio::async_write(link->sock, asio::buffer(chunk),
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
        conn->consume(n);
        link->up_bytes += n;
    }
    link->up_done = true;
    link->up_signal.notify();
}

// Log lines (and audit records) of refused hops: at most one a second,
// saying how many were left out, so that a flood of bad connections cannot
// flood the log or the audit chain.
struct refusal_log {
    std::mutex mutex;
    steady::time_point last{};
    unsigned left_out = 0;
};

void refuse(relay_state& relay, const tcp::endpoint& peer, std::string_view outcome,
            const std::string& reason) {
    static refusal_log throttle;
    relay.metrics.hops.with({"refused"}).inc();
    unsigned left_out = 0;
    {
        std::lock_guard lock(throttle.mutex);
        const auto now = steady::now();
        if (now - throttle.last < std::chrono::seconds(1)) {
            ++throttle.left_out;
            return;
        }
        throttle.last = now;
        left_out = std::exchange(throttle.left_out, 0);
    }
    const auto from = peer.address().to_string();
    spdlog::warn("cluster hop from {}: refused ({}): {}{}", from, outcome, reason,
                 left_out
                     ? fmt::format(" ({} more refused in the last second, not logged)", left_out)
                     : std::string());
    (void)relay.audit("hop_refused", {{"peer", from},
                                      {"outcome", std::string(outcome)},
                                      {"reason", core::log_text(reason, 512)},
                                      {"not_logged", std::to_string(left_out)}});
}

// Writes a whole error response on the internal socket (best effort, 1 s)
// and closes it.
asio::awaitable<void> answer_and_close(std::shared_ptr<tcp::socket> sock, std::string text) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    timer.expires_after(std::chrono::seconds(1));
    timer.async_wait([sock](error_code ec) {
        error_code ignored;
        if (!ec) sock->cancel(ignored);
    });
    error_code ec;
    co_await asio::async_write(*sock, asio::buffer(text),
                               asio::redirect_error(asio::use_awaitable, ec));
    timer.cancel();
    error_code ignored;
    sock->shutdown(tcp::socket::shutdown_both, ignored);
    sock->close(ignored);
}

// One connection on internal_listen: the preamble, then serve_hop.
asio::awaitable<void> serve_internal(std::shared_ptr<relay_state> relay, tcp::socket accepted,
                                     tcp::endpoint peer) {
    struct pending_guard {
        relay_state& r;
        bool held = true;
        void release() {
            if (std::exchange(held, false)) --r.hop_pending;
        }
        ~pending_guard() { release(); }
    } pending{*relay};
    auto ex = co_await asio::this_coro::executor;
    auto sock = std::make_shared<tcp::socket>(std::move(accepted));
    auto owned = relay->own(0, "cluster hop connection", [weak = std::weak_ptr<tcp::socket>(sock)] {
        if (auto s = weak.lock()) {
            error_code ignored;
            s->close(ignored);
        }
    });
    auto close_it = [&] {
        error_code ignored;
        sock->close(ignored);
    };

    // 1. The preamble line, within hop_preamble_timeout and max_line bytes.
    std::string in;
    std::size_t eol = std::string::npos;
    {
        asio::steady_timer timer(ex);
        auto timed_out = std::make_shared<bool>(false);
        timer.expires_after(hop_preamble_timeout);
        timer.async_wait([sock, timed_out](error_code ec) {
            if (ec) return;
            *timed_out = true;
            error_code ignored;
            sock->cancel(ignored);
        });
        std::vector<char> buf(4096);
        while ((eol = in.find("\r\n")) == std::string::npos) {
            if (in.size() >= hop_signer::max_line) break;
            error_code ec;
            const std::size_t n = co_await sock->async_read_some(
                asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
            in.append(buf.data(), n);
            if (ec) break;
        }
        timer.cancel();
        if (eol == std::string::npos) {
            std::string reason;
            if (in.size() >= hop_signer::max_line)
                reason = fmt::format("no line end within {} bytes", hop_signer::max_line);
            else if (*timed_out)
                reason = fmt::format("no complete preamble within {} ms ({} bytes came)",
                                     hop_preamble_timeout.count(), in.size());
            else
                reason = fmt::format("the connection closed before its preamble ({} bytes came)",
                                     in.size());
            refuse(*relay, peer, "bad_preamble", reason);
            close_it();
            co_return;
        }
        if (eol + 2 > hop_signer::max_line) {
            refuse(*relay, peer, "bad_preamble",
                   fmt::format("a {} byte line, over {}", eol + 2, hop_signer::max_line));
            close_it();
            co_return;
        }
    }

    // 2. Its signature, time and nonce.
    auto p = relay->hop_keys->verify(std::string_view(in).substr(0, eol), unix_ms_now(),
                                     relay->hop_nonces);
    if (!p) {
        const char* outcome = p.error().code == core::errc::auth_failed      ? "bad_hmac"
                              : p.error().code == core::errc::denied         ? "stale_or_replayed"
                              : p.error().code == core::errc::protocol_error ? "bad_preamble"
                                                                             : "busy";
        refuse(*relay, peer, outcome, p.error().message);
        close_it();
        co_return;
    }
    std::string unread = in.substr(eol + 2);
    const std::string label = fmt::format("{}/{}", p->tenant, p->name);

    // 3. The route must be this relay's (attached, or held by a lease: the
    // request queue applies). Else the sender's mirror was stale: the caller
    // gets the usual 503.
    bool here = relay->leases->held(p->tenant, p->name).lease != 0;
    if (const auto* r = relay->route(0, p->tenant, p->name); r) {
        auto t = r->tunnel.lock();
        here = here || (t && !t->closing);
    }
    if (!here) {
        refuse(*relay, peer, "not_attached",
               fmt::format("relay {} sent a request for {}, which has no tunnel here", p->node,
                           label));
        auto text = error_response(503, "tunnel_offline",
                                   fmt::format("{} is not attached to this relay (any more); "
                                               "retry in a moment",
                                               label),
                                   1);
        co_await answer_and_close(sock, std::move(text));
        co_return;
    }

    // 4. The caller counts against the connection caps as if it had come
    // here directly (by its own address).
    error_code ec;
    const auto client = asio::ip::make_address(p->client_ip, ec);
    auto ticket = relay->connections.admit(source_key(client));
    if (ec || !ticket) {
        const auto cap = ec ? std::string("bad_address") : std::string(to_string(ticket.error()));
        relay->metrics.connections_refused.with({cap}).inc();
        refuse(*relay, peer, "over_cap",
               fmt::format("caller {} of {} is over {}", p->client_ip, label, cap));
        auto text = error_response(503, "over_capacity",
                                   "this relay has too many open connections; retry later", 1);
        co_await answer_and_close(sock, std::move(text));
        co_return;
    }
    relay->metrics.hops.with({"received"}).inc();
    spdlog::debug("cluster hop from {} ({}): {} for {}", p->node, peer.address().to_string(), label,
                  p->client_ip);
    pending.release();
    owned.reset();  // serve_hop registers the connection itself
    hop_binding binding{p->node, p->tenant, p->name, p->https};
    auto serve = serve_hop(relay, std::move(*sock), peer, std::move(unread), p->client_ip,
                           std::move(binding), std::move(*ticket));
    co_await std::move(serve);
}

}  // namespace

std::string head_for_hop(const http_head& head) {
    std::string out =
        fmt::format("{} {} HTTP/1.{}\r\n", head.method, head.target, head.version == 10 ? 0 : 1);
    for (const auto& f : head.fields) {
        out += f.name;
        out += ": ";
        out += f.value;
        out += "\r\n";
    }
    out += "\r\n";
    return out;
}

asio::awaitable<hop_result> hop_to_owner(std::shared_ptr<relay_state> relay,
                                         std::shared_ptr<public_conn> conn, const http_head& head,
                                         public_route route, cluster_routes::remote_owner owner) {
    const auto ex = co_await asio::this_coro::executor;
    const std::string label = fmt::format("{}/{}", route.tenant, route.name);
    auto link = std::make_shared<hop_link>(ex);
    auto owned = relay->own(conn->worker, "cluster hop", [weak = std::weak_ptr<hop_link>(link)] {
        if (auto l = weak.lock()) l->close();
    });
    std::string failure;  // why the owner could not be reached
    // A request the owner never got to answer waits again for the name's
    // tunnel when a lease holds the name (call after marking the owner
    // unreachable: then the lease's name is `awaited`).
    auto may_requeue = [&] {
        return conn->hop_requeues < max_hop_requeues && !relay->stopping &&
               relay->config.queue.max_requests > 0 &&
               relay->cluster->awaited(route.tenant, route.name);
    };
    std::size_t sent_body = 0;  // caller bytes sent with the head (a body, a pipelined request)

    // 1. Connect, within hop_connect_timeout.
    auto where = parse_listen_address(owner.address);
    error_code ec;
    asio::ip::address address;
    if (where) address = asio::ip::make_address(where->host, ec);
    if (!where || ec) {
        failure =
            fmt::format("its address {:?} is not HOST:PORT", core::log_text(owner.address, 80));
    } else {
        asio::steady_timer timer(ex);
        timer.expires_after(hop_connect_timeout);
        auto timed_out = std::make_shared<bool>(false);
        timer.async_wait([link, timed_out](error_code e) {
            if (e) return;
            *timed_out = true;
            link->close();
        });
        const tcp::endpoint target(address, where->port);
        co_await link->sock.async_connect(target, asio::redirect_error(asio::use_awaitable, ec));
        timer.cancel();
        if (*timed_out)
            failure = fmt::format("no connection to {} within {} ms", owner.address,
                                  hop_connect_timeout.count());
        else if (ec)
            failure = fmt::format("connecting to {}: {}", owner.address, ec.message());
    }

    // 2. The preamble, the head as parsed, and the body bytes already read.
    std::string out;
    if (failure.empty()) {
        error_code ignored;
        link->sock.set_option(tcp::no_delay(true), ignored);
        hop_preamble p{relay->cluster->node(), unix_ms_now(), new_hop_nonce(),
                       route.tenant,           route.name,    conn->peer_ip,
                       conn->secure()};
        auto line = relay->hop_keys->sign(p);
        if (!line) {
            failure = line.error().message;
        } else {
            out = std::move(*line);
            out += head_for_hop(head);
            out += conn->buffered();
            sent_body = conn->buffered().size();
            conn->consume(sent_body);
        }
    }
    // Nothing of the request has left this relay yet (so it may wait and go
    // again: never twice).
    const bool unsent = !failure.empty();
    if (failure.empty()) {
        co_await asio::async_write(link->sock, asio::buffer(out),
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec) failure = fmt::format("sending to {}: {}", owner.address, ec.message());
    }
    if (!failure.empty()) {
        relay->metrics.hops.with({"failed"}).inc();
        spdlog::warn("{}: the relay holding it ({}) is unreachable: {}", label, owner.node,
                     failure);
        link->close();
        relay->cluster->unreachable(owner.node);
        // Its lease holds the name: the tunnel will attach again (here or to
        // another relay); the request waits for it in the queue.
        if (unsent && may_requeue()) {
            ++conn->hop_requeues;
            relay->metrics.hops.with({"requeued"}).inc();
            co_return hop_result::requeue;
        }
        co_await send_error(*conn, 502, "owner_unreachable",
                            fmt::format("{} is served by relay {}, which cannot be reached right "
                                        "now; retry in a few seconds",
                                        label, owner.node),
                            hop_retry_after);
        co_return hop_result::done;
    }
    relay->metrics.hops.with({"sent"}).inc();
    // The request has started: the next one waiting for the name may go.
    conn->turn.reset();

    // 3. Both ways, raw, until either side ends; what the owner sends goes
    // to the caller as it comes (a streamed response stays streamed). Not
    // counted in relay->in_flight: this relay cannot tell an idle hop
    // connection from a busy one, and a drain must not wait for idle ones
    // (a shutdown closes hop connections with the rest, after the drain).
    core::spawn(ex, pump_up(conn, link), "cluster hop pump (caller to owner)");
    const auto buf = std::make_unique_for_overwrite<char[]>(hop_read_chunk);  // not zeroed
    std::uint64_t back = 0;
    while (!conn->closed) {
        const std::size_t n = co_await link->sock.async_read_some(
            asio::buffer(buf.get(), hop_read_chunk), asio::redirect_error(asio::use_awaitable, ec));
        if (n > 0) {
            back += n;
            const auto wrote = co_await write_caller(*conn, std::string_view(buf.get(), n));
            if (wrote != write_outcome::done) break;
        }
        if (ec) break;
    }
    link->close();
    if (back == 0 && !conn->closed) {
        relay->metrics.hops.with({"failed"}).inc();
        spdlog::warn("{}: the relay holding it ({}) closed the hop without an answer", label,
                     owner.node);
        relay->cluster->unreachable(owner.node);
        // It died as it got the request (or refused the hop). A request that
        // may be sent again (RFC 9110 9.2.2: idempotent, no body, nothing
        // after it sent) waits for the name's tunnel again.
        conn->data_signal.notify();  // the pump stops (the link is closed)
        while (!link->up_done)
            (void)co_await link->up_signal.wait(steady::now() + std::chrono::seconds(5));
        const bool bodyless = !head.chunked && head.content_length.value_or(0) == 0;
        if (is_idempotent(head.method) && bodyless && sent_body == 0 && link->up_bytes == 0 &&
            !conn->in_eof && may_requeue()) {
            ++conn->hop_requeues;
            relay->metrics.hops.with({"requeued"}).inc();
            co_return hop_result::requeue;
        }
        co_await send_error(*conn, 502, "owner_unreachable",
                            fmt::format("{} is served by relay {}, which closed the connection "
                                        "without answering; retry in a few seconds",
                                        label, owner.node),
                            hop_retry_after);
    }
    conn->close();
    while (!link->up_done)
        (void)co_await link->up_signal.wait(steady::now() + std::chrono::seconds(5));
    co_return hop_result::done;
}

asio::awaitable<void> accept_internal(std::shared_ptr<relay_state> relay) {
    auto& acceptor = *relay->internal_acceptor;
    asio::steady_timer backoff(relay->io);
    for (;;) {
        error_code ec;
        tcp::socket sock =
            co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            if (ec == asio::error::operation_aborted || !acceptor.is_open() || relay->stopping)
                break;
            // Out of descriptors or memory: fails again at once; wait a little.
            backoff.expires_after(std::chrono::milliseconds(100));
            error_code ignored;
            co_await backoff.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
            continue;
        }
        const auto peer = sock.remote_endpoint(ec);
        if (ec) continue;
        if (relay->hop_pending >= hop_max_pending) {
            refuse(*relay, peer, "busy",
                   fmt::format("{} internal connections are waiting for their preamble",
                               hop_max_pending));
            sock.close(ec);
            continue;
        }
        ++relay->hop_pending;
        core::spawn(relay->io, serve_internal(relay, std::move(sock), peer),
                    "cluster hop connection");
    }
}

}  // namespace tunnel::relay
