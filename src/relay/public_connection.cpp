#include "relay/public_connection.hpp"

#include <algorithm>
#include <cctype>
#include <memory>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/spawn.hpp"
#include "core/unique_fd.hpp"
#include "relay/cluster_hop.hpp"
#include "relay/http_tracker.hpp"
#include "relay/lease_hold.hpp"
#include "relay/proxy_exchange.hpp"
#include "relay/refusal_reports.hpp"
#include "relay/relay_state.hpp"
#include "relay/tcp_service.hpp"
#include "relay/tunnel_attach.hpp"

namespace tunnel::relay {

namespace {

using steady = std::chrono::steady_clock;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
namespace ssl = asio::ssl;

constexpr std::size_t public_read_chunk = 64 * 1024;
constexpr std::size_t public_buffer_cap = 1 << 20;  // unsent caller bytes held per connection

}  // namespace

// ---------------------------------------------------------------- reading

namespace {

// Reads caller bytes for the rest of the connection once the first request
// was routed (the first head is read inline: an attach takes the stream).
// Stops without EOF when the connection moves to another worker (detaching).
asio::awaitable<void> read_public(std::shared_ptr<public_conn> conn) {
    // Not zeroed: 64 KiB of memset per connection showed in the profile.
    const auto buf = std::make_unique_for_overwrite<char[]>(public_read_chunk);
    while (!conn->closed && !conn->detaching) {
        if (conn->buffered().size() >= public_buffer_cap) {
            co_await conn->room_signal.wait(steady::time_point::max());
            continue;
        }
        error_code ec;
        std::size_t n =
            co_await conn->stream->read_some(asio::buffer(buf.get(), public_read_chunk), ec);
        if (n > 0) conn->in.append(buf.get(), n);
        if (ec && conn->detaching) break;
        if (ec) {
            conn->in_eof = true;
            // The caller hung up: close the channel so the origin stops
            // generating (a WebSocket passed through half-closes instead).
            if (conn->channel && !conn->upgraded) conn->channel->close();
            if (!conn->upgraded) conn->hung_up();
            conn->data_signal.notify();
            break;
        }
        conn->data_signal.notify();
    }
    conn->reader_running = false;
    conn->data_signal.notify();
}

// Reads more of the first request head directly (no reader yet). False on
// EOF, error or deadline (`timed_out` says which).
asio::awaitable<bool> read_inline(public_conn& conn, steady::time_point deadline, bool& timed_out) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    timer.expires_at(deadline);
    auto stream = conn.stream;
    timer.async_wait([stream](error_code ec) {
        if (!ec) stream->cancel();
    });
    // Not zeroed: 16 KiB of memset per connection was 11% of the relay's
    // instructions for a `Connection: close` request.
    constexpr std::size_t chunk = 16 * 1024;
    const auto buf = std::make_unique_for_overwrite<char[]>(chunk);
    error_code ec;
    std::size_t n = co_await conn.stream->read_some(asio::buffer(buf.get(), chunk), ec);
    timer.cancel();
    if (n > 0) conn.in.append(buf.get(), n);
    if (ec) {
        timed_out = steady::now() >= deadline;
        if (!timed_out) conn.in_eof = true;
        co_return false;
    }
    co_return true;
}

// Registers a public connection (or its stream, before there is one) in
// relay.owned: a shutdown closes it whatever it is doing (TLS handshake, head
// read, proxying, idle keep-alive), on its worker.
template <class T>
core::close_registry::handle owned_by(relay_state& relay, unsigned worker,
                                      const std::shared_ptr<T>& c) {
    return relay.own(worker, "public connection", [weak = std::weak_ptr<T>(c)] {
        if (auto p = weak.lock()) p->close();
    });
}

std::string_view path_of(std::string_view target) {
    auto q = target.find('?');
    return q == std::string_view::npos ? target : target.substr(0, q);
}

// A request head read and routed on one worker, to be served on another.
struct routed_request {
    http_tracker tracker;
    http_head head;
    bool first = false;  // the connection's first request (an attach, or the reader not started)
    std::unique_ptr<request_queue::ticket> turn;  // its turn, when it waited in the queue
    std::unique_ptr<request_trace> trace;         // tracing on: the request's trace
};

// The worker that serves `head`: for an attach, the one the tunnel will be
// pinned to; for a request, the worker of the tunnel publishing its route;
// else (unknown route, malformed: answered here) `conn.worker`.
unsigned worker_for(relay_state& relay, const public_conn& conn, const http_head& head,
                    bool attach) {
    if (relay.workers.size() < 2) return conn.worker;
    if (attach) return relay.pick_worker();
    const auto& cfg = relay.config;
    const std::string* host = head.find("Host");
    auto route =
        route_request(host ? *host : std::string_view{}, head.target, cfg.domain, routing_of(cfg));
    if (!route) return conn.worker;
    const auto* r = relay.route(conn.worker, route->tenant, route->name);
    return r ? r->worker : conn.worker;
}

// ---------------------------------------------------------------- connections

asio::awaitable<void> serve_connection(std::shared_ptr<relay_state> relay,
                                       std::shared_ptr<public_conn> conn,
                                       connection_gate::ticket ticket,
                                       std::optional<routed_request> routed);

// Moves `conn` to worker `target` (docs/relay.md "Threading model"): stops
// the reader, releases the socket from this io_context, and posts the
// descriptor, the unread bytes, the routed head and the ticket to the target,
// which adopts the descriptor and serves from there. The connection here is
// then done with (its stream holds no socket any more).
asio::awaitable<void> hand_off(std::shared_ptr<relay_state> relay,
                               std::shared_ptr<public_conn> conn, unsigned target,
                               connection_gate::ticket ticket, routed_request routed);

asio::awaitable<void> serve_connection(std::shared_ptr<relay_state> relay,
                                       std::shared_ptr<public_conn> conn,
                                       connection_gate::ticket ticket,
                                       std::optional<routed_request> routed) {
    // The settings as this connection starts (a reload applies to later ones).
    const auto live = relay->live();
    const auto& limits = live->config.limits;
    auto ex = co_await asio::this_coro::executor;
    bool first = routed ? routed->first : true;
    const bool movable = std::dynamic_pointer_cast<plain_stream>(conn->stream) != nullptr;
    if (!first) {
        // Handed over after its first request: the reader goes on here.
        conn->reader_running = true;
        core::spawn(ex, read_public(conn), "relay public connection reader");
    }
    // Over the proxy hop every request after the first comes with a
    // preamble of its own (cluster_hop.hpp), which rebinds the connection.
    bool next_preamble = false;
    while (!conn->closed) {
        if (next_preamble) {
            next_preamble = false;
            const bool bound = co_await next_hop_preamble(relay, conn, ticket);
            if (!bound) co_return;
        }
        std::optional<http_tracker> parsed;
        http_head head;
        std::unique_ptr<request_trace> trace;
        if (routed) {
            // Read and routed on the worker that handed the connection over.
            parsed.emplace(std::move(routed->tracker));
            head = std::move(routed->head);
            conn->turn = std::move(routed->turn);
            trace = std::move(routed->trace);
            routed.reset();
        } else {
            // A request the hop could not send goes back to wait (the queue
            // step below) with what was read of it.
            std::unique_ptr<retried_request> retried = std::move(conn->retry);
            auto tracker = retried ? std::move(retried->tracker)
                                   : http_tracker::for_request(
                                         static_cast<std::uint32_t>(limits.max_header_bytes),
                                         limits.max_body_bytes);
            if (retried) trace = std::move(retried->trace);
            const auto now = steady::now();
            bool started = !conn->buffered().empty();
            auto deadline =
                now + (first || started ? limits.header_read_timeout : limits.idle_timeout);
            for (; !retried;) {
                // The head is rebuilt from the parsed fields for the origin, so
                // what the parser took (it may take the request line before the
                // rest arrives) is consumed at once and never fed twice.
                if (!conn->buffered().empty()) conn->consume(tracker.feed(conn->buffered()));
                if (const auto a = check_head(tracker.problem(), tracker.problem_detail(), limits);
                    !a.admitted()) {
                    co_await send_refusal(*relay, *conn, a);
                    co_return;
                }
                if (tracker.header_done()) break;
                if (conn->in_eof || conn->closed) {
                    conn->close();
                    co_return;
                }
                bool more = false;
                bool timed_out = false;
                if (first) {
                    more = co_await read_inline(*conn, deadline, timed_out);
                } else {
                    more = co_await conn->data_signal.wait(deadline);
                    timed_out = !more;
                }
                if (!more && timed_out) {
                    if (!conn->buffered().empty()) {
                        limit_hit(*relay, "header_timeout");
                        co_await send_error(
                            *conn, 408, "header_timeout",
                            fmt::format("the request head did not arrive within {} ms",
                                        limits.header_read_timeout.count()));
                    } else {
                        conn->close();
                    }
                    co_return;
                }
                if (!started && !conn->buffered().empty()) {
                    started = true;
                    deadline = std::min(deadline, steady::now() + limits.header_read_timeout);
                }
            }
            // A complete first head: no longer counted against max_unauthenticated.
            if (first) ticket.authenticated();
            head = retried ? std::move(retried->head) : tracker.head();
            parsed.emplace(std::move(tracker));
            // Served on the worker that owns the target tunnel (or will).
            // (Never over the proxy hop: that connection is bound to a route.)
            const bool is_attach = first && !conn->hop && path_of(head.target) == "/v1/tunnel";
            if (!is_attach) {
                if (relay->tracer && !trace) trace = begin_trace(relay->config.tracing, head);
                // A leased name without its tunnel: wait for it (the reader
                // runs meanwhile, so a caller that hangs up leaves the queue).
                auto start_reader = [&] {
                    if (!first) return;
                    first = false;
                    conn->reader_running = true;
                    core::spawn(ex, read_public(conn), "relay public connection reader");
                };
                const auto hold_from = trace ? steady::now() : steady::time_point{};
                auto held = co_await hold_for_lease(relay, conn, head, start_reader);
                if (trace && (held.turn || held.answered)) {  // it queued
                    trace->queued_from = hold_from;
                    trace->queued_until = steady::now();
                }
                if (held.answered) {
                    if (trace)
                        finish_trace(*relay->tracer, *trace, conn->last_status, {}, {},
                                     conn->peer_ip);
                    co_return;
                }
                conn->turn = std::move(held.turn);
            }
            if (movable && !relay->stopping) {
                const unsigned target = worker_for(*relay, *conn, head, is_attach);
                if (target != conn->worker) {
                    // A named local: no temporaries in a co_await's arguments (g++ 12).
                    routed_request moving{std::move(*parsed), std::move(head), first,
                                          std::move(conn->turn), std::move(trace)};
                    co_await hand_off(relay, conn, target, std::move(ticket), std::move(moving));
                    co_return;
                }
            }
        }
        if (first && !conn->hop && path_of(head.target) == "/v1/tunnel") {
            // An attach lasts as long as its tunnel: the parser and the read
            // buffer are done with (memory per idle tunnel, bench/relay_load).
            parsed.reset();
            std::string().swap(conn->in);
            conn->head = 0;
            co_await attach(relay, conn, std::move(head));
            co_return;
        }
        if (first) {
            first = false;
            conn->reader_running = true;
            core::spawn(ex, read_public(conn), "relay public connection reader");
        }
        bool keep = co_await proxy_exchange(relay, conn, std::move(*parsed), std::move(head),
                                            std::move(trace));
        conn->turn.reset();                   // not started (refused): the next queued request goes
        if (!keep || relay->stopping) break;  // draining: no next request on this connection
        next_preamble = conn->hop && !conn->retry;
    }
    conn->channel.reset();
    conn->close();
}

// Serves a connection handed over by another worker, on this one.
asio::awaitable<void> serve_handed(std::shared_ptr<relay_state> relay, unsigned worker,
                                   std::shared_ptr<core::unique_fd> fd, tcp::endpoint peer,
                                   std::string peer_ip, std::optional<hop_binding> hop,
                                   std::string unread, std::chrono::milliseconds write_timeout,
                                   connection_gate::ticket ticket, routed_request routed) {
    auto ex = co_await asio::this_coro::executor;
    std::shared_ptr<public_stream> stream;
    try {
        tcp::socket sock(ex);
        error_code ec;
        sock.assign(peer.protocol(), fd->get(), ec);
        if (ec) {
            spdlog::warn("public connection from {}: cannot adopt its socket on worker {}: {}",
                         peer.address().to_string(), worker, ec.message());
            co_return;  // `fd` closes it
        }
        (void)fd->release();  // the socket owns it now
        stream = std::make_shared<plain_stream>(std::move(sock));
        auto conn = std::make_shared<public_conn>(ex, stream, peer);
        conn->worker = worker;
        conn->peer_ip = std::move(peer_ip);
        conn->hop = std::move(hop);
        conn->in = std::move(unread);
        conn->write_timeout = write_timeout;
        auto owned = owned_by(*relay, worker, conn);
        co_await serve_connection(relay, conn, std::move(ticket), std::move(routed));
    } catch (const std::exception& e) {
        spdlog::error("public connection from {}: {}", peer.address().to_string(), e.what());
        if (stream) stream->close();
    }
}

asio::awaitable<void> hand_off(std::shared_ptr<relay_state> relay,
                               std::shared_ptr<public_conn> conn, unsigned target,
                               connection_gate::ticket ticket, routed_request routed) {
    if (conn->reader_running) {
        conn->detaching = true;
        conn->stream->cancel();
        while (conn->reader_running && !conn->closed)
            (void)co_await conn->data_signal.wait(steady::time_point::max());
    }
    if (conn->closed) co_return;
    auto& sock = std::static_pointer_cast<plain_stream>(conn->stream)->next();
    error_code ec;
    auto fd = std::make_shared<core::unique_fd>(sock.release(ec));
    conn->closed = true;  // nothing here touches the connection again
    if (ec) {
        spdlog::warn("public connection from {}: cannot move it to worker {}: {}", conn->peer_ip,
                     target, ec.message());
        co_return;
    }
    std::string unread(conn->buffered());
    core::spawn(
        relay->worker(target).io,
        serve_handed(relay, target, std::move(fd), conn->peer, conn->peer_ip, conn->hop,
                     std::move(unread), conn->write_timeout, std::move(ticket), std::move(routed)),
        "relay public connection (handed over)");
}

asio::awaitable<void> serve_socket(std::shared_ptr<relay_state> relay, unsigned worker,
                                   tcp::socket sock, tcp::endpoint peer,
                                   connection_gate::ticket ticket) {
    error_code ec;
    sock.set_option(tcp::no_delay(true), ec);
    auto ex = co_await asio::this_coro::executor;
    std::shared_ptr<public_stream> stream;
    core::close_registry::handle owned;
    try {
        // TLS for a raw TCP name (tcp.sni_domain) is spliced, not served.
        if (relay->tcp && relay->config.tcp.sni_enabled()) {
            const bool taken = co_await route_tls_by_sni(relay, worker, sock, peer, ticket);
            if (taken) co_return;
        }
        if (relay->tls_context) {
            auto s = std::make_shared<tls_stream>(std::move(sock), *relay->tls_context);
            owned = owned_by(*relay, worker, s);
            asio::steady_timer timer(ex);
            timer.expires_after(relay->live()->config.limits.header_read_timeout);
            timer.async_wait([s](error_code e) {
                if (!e) s->cancel();
            });
            co_await s->next().async_handshake(ssl::stream_base::server,
                                               asio::redirect_error(asio::use_awaitable, ec));
            timer.cancel();
            if (ec) {
                spdlog::debug("TLS handshake with {} failed: {}", peer.address().to_string(),
                              ec.message());
                s->close();
                co_return;
            }
            stream = s;
        } else {
            stream = std::make_shared<plain_stream>(std::move(sock));
        }
        auto conn = std::make_shared<public_conn>(ex, stream, peer);
        conn->worker = worker;
        owned = owned_by(*relay, worker, conn);
        conn->write_timeout = relay->live()->config.limits.write_timeout;
        std::optional<routed_request> none;
        co_await serve_connection(relay, conn, std::move(ticket), std::move(none));
    } catch (const std::exception& e) {
        spdlog::error("public connection from {}: {}", peer.address().to_string(), e.what());
        if (stream) stream->close();
    }
}

}  // namespace

asio::awaitable<void> serve_hop(std::shared_ptr<relay_state> relay, tcp::socket sock,
                                tcp::endpoint peer, std::string unread, std::string client_ip,
                                hop_binding hop, connection_gate::ticket ticket) {
    error_code ec;
    sock.set_option(tcp::no_delay(true), ec);
    auto ex = co_await asio::this_coro::executor;
    std::shared_ptr<public_stream> stream;
    try {
        stream = std::make_shared<plain_stream>(std::move(sock));
        auto conn = std::make_shared<public_conn>(ex, stream, peer);
        conn->worker = 0;
        conn->peer_ip = std::move(client_ip);
        conn->hop = std::move(hop);
        conn->in = std::move(unread);
        conn->write_timeout = relay->live()->config.limits.write_timeout;
        auto owned = owned_by(*relay, 0, conn);
        std::optional<routed_request> none;
        co_await serve_connection(relay, conn, std::move(ticket), std::move(none));
    } catch (const std::exception& e) {
        spdlog::error("hop connection from {}: {}", peer.address().to_string(), e.what());
        if (stream) stream->close();
    }
}

// ---------------------------------------------------------------- accept loop

namespace {

// An accept error's label for relay_accept_errors_total.
std::string_view accept_error_label(const error_code& ec) {
    if (ec == asio::error::no_descriptors) return "emfile";
    if (ec == boost::system::errc::too_many_files_open_in_system) return "enfile";
    if (ec == asio::error::no_buffer_space) return "enobufs";
    if (ec == asio::error::no_memory) return "enomem";
    if (ec == asio::error::connection_aborted) return "econnaborted";
    return "other";
}

// Errors about one connection that went away before it was accepted: the
// next accept is fine. Anything else (out of descriptors or memory) fails
// again at once until something changes, so the loop backs off.
bool transient(const error_code& ec) {
    return ec == asio::error::connection_aborted || ec == asio::error::connection_reset ||
           ec == boost::system::errc::protocol_error || ec == asio::error::try_again ||
           ec == asio::error::interrupted;
}

constexpr auto accept_backoff_min = std::chrono::milliseconds(50);
constexpr auto accept_backoff_max = std::chrono::seconds(1);

}  // namespace

asio::awaitable<void> accept_public(std::shared_ptr<relay_state> relay, unsigned worker) {
    auto& io = relay->worker(worker).io;
    auto& acceptor = *relay->worker(worker).acceptor;
    asio::steady_timer backoff_timer(io);
    steady::duration backoff{0};
    std::uint64_t burst = 0;  // failed accepts since the last success
    // Summaries of throttled attach refusals, for as long as the listener is
    // open (worker 0's loop runs them).
    auto summaries = std::make_shared<asio::steady_timer>(io);
    auto lease_sweep = std::make_shared<asio::steady_timer>(io);
    if (worker == 0) {
        core::spawn(io, report_attach_refusals(relay, summaries), "relay attach refusal summaries");
        core::spawn(io, sweep_leases(relay, lease_sweep), "relay lease expiry");
    }
    for (;;) {
        error_code ec;
        // The caller's address comes with the accept (no getpeername(2)).
        tcp::endpoint peer;
        tcp::socket sock =
            co_await acceptor.async_accept(peer, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            if (ec == asio::error::operation_aborted || !acceptor.is_open() || relay->stopping)
                break;
            relay->metrics.accept_errors.with({accept_error_label(ec)}).inc();
            if (transient(ec)) continue;
            // Out of descriptors (EMFILE) or memory: the same accept fails at
            // once until a connection closes. Back off 50 ms, doubling to 1 s,
            // and say so once per burst instead of once per failure.
            // Every worker's loop sees the same EMFILE: one of them says it.
            if (burst++ == 0 && relay->accept_bursts.fetch_add(1) == 0)
                spdlog::warn(
                    "accept on the public listener failed: {}; backing off (up to {} ms) until "
                    "it recovers ({} public connections open, limits.max_connections {})",
                    ec.message(), accept_backoff_max.count(), relay->connections.open(),
                    relay->connections.caps().max_connections);
            backoff = backoff == steady::duration{0}
                          ? steady::duration(accept_backoff_min)
                          : std::min<steady::duration>(backoff * 2, accept_backoff_max);
            backoff_timer.expires_after(backoff);
            error_code ignored;
            co_await backoff_timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
            continue;
        }
        if (burst > 0) {
            if (relay->accept_bursts.fetch_sub(1) == 1)
                spdlog::info("the public listener accepts again after {} failed accepts", burst);
            burst = 0;
            backoff = steady::duration{0};
        }
        auto ticket = relay->connections.admit(source_key(peer.address()));
        if (!ticket) {
            // Over a cap: close at once, before reading anything.
            relay->metrics.connections_refused.with({to_string(ticket.error())}).inc();
            limit_hit(*relay, to_string(ticket.error()));
            sock.close(ec);
            continue;
        }
        relay->metrics.open_connections.with({}).set(relay->connections.open());
        core::spawn(
            io,
            [](std::shared_ptr<relay_state> r, unsigned w, tcp::socket s, tcp::endpoint p,
               connection_gate::ticket t) -> asio::awaitable<void> {
                co_await serve_socket(r, w, std::move(s), p, std::move(t));
                r->metrics.open_connections.with({}).set(r->connections.open());
            }(relay, worker, std::move(sock), peer, std::move(*ticket)),
            "relay public connection");
    }
    summaries->cancel();
    lease_sweep->cancel();
}

}  // namespace tunnel::relay
