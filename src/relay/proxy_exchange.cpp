#include "relay/proxy_exchange.hpp"

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/spawn.hpp"
#include "core/wake_signal.hpp"
#include "relay/admission.hpp"
#include "relay/body_rate.hpp"
#include "relay/cluster_hop.hpp"
#include "relay/cluster_routes.hpp"
#include "relay/exchange_accounting.hpp"
#include "relay/exchange_outcome.hpp"
#include "relay/proxy_headers.hpp"
#include "relay/public_connection.hpp"
#include "relay/public_route.hpp"
#include "relay/relay_state.hpp"
#include "relay/share_api.hpp"
#include "relay/visitor_access.hpp"
#include "relay/visitor_gate.hpp"

namespace tunnel::relay {

namespace {

using steady = std::chrono::steady_clock;
using error_code = boost::system::error_code;

constexpr auto channel_open_timeout = std::chrono::seconds(10);

// Writes `text` to the channel as the peer's window allows. False when the
// channel closed or the deadline passed.
asio::awaitable<bool> write_channel(ssh::server_channel& ch, std::string_view text,
                                    steady::time_point deadline) {
    std::size_t sent = 0;
    while (sent < text.size()) {
        auto w = ch.write_some(text.substr(sent));
        if (!w) co_return false;
        sent += *w;
        if (sent < text.size() && !co_await ch.wait_writable(deadline)) co_return false;
    }
    co_return true;
}

// 421 to a request on a hop connection for another route than its own
// (public_conn::hop): the caller's client opens a new connection.
asio::awaitable<void> send_misdirected(relay_state& relay, public_conn& conn) {
    relay.metrics.bad_requests.with({}).inc();
    co_await send_error(conn, 421, "misdirected",
                        fmt::format("this connection came through relay {} for {}/{} only; send "
                                    "requests for other names on a new connection",
                                    conn.hop->node, conn.hop->tenant, conn.hop->name));
}

struct exchange_state {
    exchange_state(const asio::any_io_executor& ex, http_tracker req, pool::circuit_breaker& b,
                   bool probe)
        : request(std::move(req)), ticket(b, probe), done_signal(ex) {}
    steady::time_point start = steady::now();  // the head has been read
    http_tracker request;
    breaker_ticket ticket;
    bool upgrade = false;  // the request asks for a protocol switch
    bool reused = false;   // the channel carried an earlier request (keep-alive)
    // A reused channel that the origin turns out to have closed, before any
    // answer, may be swapped for a new one and the request sent again: only
    // for an idempotent request without a body (pump_response says `retry`).
    bool may_retry = false;
    bool body_done = false;  // the whole request reached the channel
    steady::time_point body_done_at{};
    bool pump_done = false;      // pump_request returned (or was never needed)
    bool abort = false;          // pump_request must stop
    bool response_over = false;  // pump_response returned: no 101 is coming
    // Why pump_request ended the exchange, if it did (exchange_outcome.hpp).
    std::optional<exchange_end> body_end;
    std::string body_detail;
    std::uint64_t bytes_up = 0;
    core::wake_signal done_signal;

    void finish_body() {
        body_done = true;
        body_done_at = steady::now();
    }
    // Path-routed requests: every tenant shares the relay's browser origin,
    // so Service-Worker-Allowed never reaches the caller (docs/relay.md).
    bool drop_service_worker_allowed = false;
    // pump_request is not running (the whole request went with the head):
    // a clean answer puts the channel back in the pool (under pool_name)
    // before its last bytes are written to the caller, so that the caller's
    // next request, which may reach this worker from another one before the
    // write's completion runs here, finds it there.
    bool release_early = false;
    std::string pool_name;
    flight_guard* guard = nullptr;   // proxy_exchange's, which outlives pump_response
    request_trace* trace = nullptr;  // proxy_exchange's record's (null: not traced)

    // The channel may go back to the pool before the caller has the whole
    // answer: nobody writes to it any more (the whole body reached it and
    // pump_request returned, or never ran) and no protocol switch is coming.
    [[nodiscard]] bool channel_free() const noexcept {
        return !upgrade && body_done && (release_early || pump_done);
    }
};

// Writes conn->buffered()[0, n) to the channel: views are re-taken after
// every wait (the reader may have grown the buffer meanwhile). False when the
// channel closed or its window stayed shut until `idle` passed
// (`timed_out`).
asio::awaitable<bool> forward_buffered(public_conn& conn, ssh::server_channel& ch, std::size_t n,
                                       std::chrono::milliseconds idle, bool& timed_out) {
    std::size_t sent = 0;
    while (sent < n) {
        auto w = ch.write_some(conn.buffered().substr(sent, n - sent));
        if (!w) co_return false;
        sent += *w;
        if (sent < n && !co_await ch.wait_writable(steady::now() + idle)) {
            timed_out = !ch.closed();
            co_return false;
        }
    }
    co_return true;
}

// Caller -> origin. First the request body, raw, as the tracker delimits
// it; a body the tracker refuses, a caller that stalls or hangs up, end the
// exchange here (body_end) and close the channel. Then, for a request that
// asked to switch protocols, it waits: after the origin's 101 every caller
// byte goes through raw; after any other answer it stops, and the bytes
// that follow are the next request, parsed like the first.
asio::awaitable<void> pump_request(std::shared_ptr<relay_state> relay,
                                   std::shared_ptr<public_conn> conn,
                                   std::shared_ptr<exchange_state> ex) {
    ssh::server_channel& ch = *conn->channel;  // kept until pump_done (proxy_exchange waits)
    const auto live = relay->live();
    const auto& limits = live->config.limits;
    const auto idle = limits.idle_timeout;
    // limits.min_body_rate: only the waits for caller bytes are charged to
    // the caller, never the waits for the origin's window.
    body_rate rate(limits.min_body_rate, limits.min_body_rate_grace);
    auto end_exchange = [&](exchange_end end) {
        if (!ex->body_end) ex->body_end = end;
        ch.close();  // pump_response wakes up and answers
    };
    while (!ex->body_done && !ex->abort && !ch.closed()) {
        std::size_t n = 0;
        if (!conn->buffered().empty()) {
            n = ex->request.feed(conn->buffered());
            if (ex->request.problem() != http_problem::none) {
                ex->body_detail = ex->request.problem_detail();
                end_exchange(end_for_body_problem(ex->request.problem()));
                break;
            }
        }
        if (n == 0) {
            if (conn->in_eof) {
                end_exchange(exchange_end::caller_gone);
                break;
            }
            const auto waited_from = steady::now();
            const bool by_rate = rate.budget() < steady::duration(idle);
            const auto deadline = waited_from + std::min<steady::duration>(idle, rate.budget());
            const bool woke = co_await conn->data_signal.wait(deadline);
            rate.record(steady::now() - waited_from, 0);
            if (!woke) {
                if (!ex->abort) {
                    relay->metrics.callers_cut_off.with({by_rate ? "body_rate" : "idle"}).inc();
                    if (by_rate) {
                        limit_hit(*relay, "body_rate");
                        ex->body_detail = fmt::format(
                            "the request body arrived slower than {} bytes/s: send it faster or "
                            "in one go",
                            limits.min_body_rate);
                    }
                    end_exchange(exchange_end::caller_stalled);
                }
                break;
            }
            continue;
        }
        bool timed_out = false;
        if (!co_await forward_buffered(*conn, ch, n, idle, timed_out)) {
            // The origin stopped taking the body: not an answer, and not a
            // verdict either (the request never reached it whole).
            if (timed_out) end_exchange(exchange_end::origin_timeout);
            break;
        }
        conn->consume(n);
        rate.record(steady::duration::zero(), n);
        ex->bytes_up += n;
        if (ex->request.done()) ex->finish_body();
    }
    if (ex->upgrade && ex->body_done) {
        while (!conn->upgraded && !ex->response_over && !ex->abort && !ch.closed())
            (void)co_await conn->data_signal.wait(steady::time_point::max());
        while (conn->upgraded && !ex->abort && !ch.closed()) {
            const std::size_t n = conn->buffered().size();
            if (n == 0) {
                if (conn->in_eof) {
                    ch.send_eof();
                    break;
                }
                (void)co_await conn->data_signal.wait(steady::time_point::max());
                continue;
            }
            bool timed_out = false;
            if (!co_await forward_buffered(*conn, ch, n, idle, timed_out)) break;
            conn->consume(n);
            ex->bytes_up += n;
        }
    }
    ex->pump_done = true;
    ex->done_signal.notify();
}

struct response_outcome {
    bool complete = false;           // the whole response reached the caller
    bool keep_alive = false;         // and the caller was told the connection stays open
    bool origin_keep_alive = false;  // the origin's final head kept its connection open
    bool retry = false;              // a stale kept-alive channel: nothing was answered (may_retry)
    int status = 0;
    std::uint64_t bytes = 0;
};

// The end of an exchange without a response head: the breaker's verdict,
// the metrics, and the answer (none when the caller is gone).
asio::awaitable<void> end_without_answer(relay_state& relay, public_conn& conn, exchange_state& ex,
                                         exchange_end end, std::string_view route_label,
                                         std::string_view detail, response_outcome& out) {
    // A kept-alive channel that the origin closes as the next request
    // arrives says nothing about the origin (it was closing an idle one).
    const bool sent = ex.body_done && !(ex.reused && end == exchange_end::origin_closed);
    if (ex.ticket.settle(end, sent) == breaker_verdict::failure)
        relay.metrics.origin_failures.with({}).inc();
    const auto live = relay.live();
    const auto& limits = live->config.limits;
    switch (end) {
        case exchange_end::caller_bad_body:
            relay.metrics.bad_requests.with({}).inc();
            break;
        case exchange_end::caller_body_too_large:
            relay.metrics.bad_requests.with({}).inc();
            limit_hit(relay, "body_size");
            break;
        case exchange_end::caller_stalled:
            limit_hit(relay, "body_timeout");
            break;
        default:
            break;
    }
    const std::string size = fmt::format("{} bytes", limits.max_body_bytes);
    auto answer =
        answer_for(end, route_label, limits.idle_timeout,
                   end == exchange_end::caller_body_too_large ? std::string_view(size) : detail);
    if (answer.status == 0) {
        conn.close();
        co_return;
    }
    if (!callers_fault(end))
        spdlog::warn("{}: {} ({})", route_label, answer.message, to_string(end));
    out.status = answer.status;
    co_await send_error(conn, answer.status, answer.code, std::move(answer.message));
}

// Writes `pending` to the caller and clears it; false when the caller is
// gone or too slow: a write that makes no progress within
// limits.write_timeout, or (with `rate`) a reader below limits.min_body_rate.
// A slow caller's connection is closed, so the exchange ends, the channel is
// closed with it (the origin sees the abort) and the stream slot is freed.
asio::awaitable<bool> flush_to_caller(relay_state& relay, public_conn& conn, std::string& pending,
                                      body_rate* rate) {
    if (pending.empty()) co_return true;
    const std::string_view bytes = pending;
    const auto wrote = co_await write_caller(conn, bytes, rate);
    pending.clear();
    if (wrote == write_outcome::done) co_return true;
    if (wrote != write_outcome::failed) {
        const char* why = wrote == write_outcome::too_slow ? "body_rate" : "write_timeout";
        relay.metrics.callers_cut_off.with({why}).inc();
        limit_hit(relay, why);
        spdlog::debug("caller {} too slow ({}): cut off", conn.peer_ip, why);
    }
    conn.in_eof = true;
    conn.close();
    co_return false;
}

// Origin -> caller. Each response head is rebuilt for the caller
// (response_for_caller: hop-by-hop fields dropped); the body bytes are
// forwarded raw as they arrive, watching where the response ends. What the
// channel holds is written in one go (a head with the body bytes behind
// it), and always before the next wait: a streamed chunk reaches the caller
// before the next is read. After a 101 to a request that asked for it,
// everything is raw both ways.
asio::awaitable<response_outcome> pump_response(std::shared_ptr<relay_state> relay,
                                                std::shared_ptr<public_conn> conn,
                                                std::shared_ptr<exchange_state> ex,
                                                std::shared_ptr<tunnel_entry> t,
                                                const http_head& request, std::string route_label) {
    constexpr std::size_t max_pending = 256 * 1024;
    ssh::server_channel& ch = *conn->channel;
    auto res = http_tracker::for_response(request.method == "HEAD");
    response_outcome out;
    bool raw = false;         // after a 101: bytes pass through unparsed
    bool in_body = false;     // the final head was sent; bytes are its body
    bool first_head = false;  // some head (even 100 Continue) came
    std::string pending;      // for the caller, written before the next wait
    const auto live = relay->live();
    const auto& limits = live->config.limits;
    const auto idle = limits.idle_timeout;
    auto deadline = steady::now() + idle;
    // The caller must take the response at limits.min_body_rate (the time
    // spent waiting for the origin is not charged); raw bytes are exempt.
    body_rate rate(limits.min_body_rate, limits.min_body_rate_grace);
    auto flush = [&] { return flush_to_caller(*relay, *conn, pending, raw ? nullptr : &rate); };
    for (;;) {
        const std::string_view data = ch.readable();
        std::size_t n = 0;
        if (!data.empty()) n = raw ? data.size() : res.feed(data);
        if (res.problem() != http_problem::none) {
            spdlog::warn("{}: malformed response from the origin: {}", route_label,
                         res.problem_detail());
            if (!co_await flush()) co_return out;
            if (!in_body)
                co_await end_without_answer(*relay, *conn, *ex, exchange_end::origin_bad_response,
                                            route_label, res.problem_detail(), out);
            co_return out;
        }
        if (n > 0) {
            deadline = steady::now() + idle;
            t->bytes_from_origin += n;
            if (raw || in_body) {
                pending.append(data.data(), n);
                out.bytes += n;
            }
            ch.consume(n);  // `data` is not used after this
            if (!raw && !in_body && res.header_done()) {
                // A whole head (its bytes were taken by the parser): rebuilt.
                const http_head& h = res.head();
                if (!first_head) {
                    first_head = true;
                    (void)ex->ticket.settle(exchange_end::answered, ex->body_done);
                    const auto now = steady::now();
                    relay->metrics.ttfb.with({t->policy.tenant})
                        .observe(std::chrono::duration<double>(now - ex->start).count());
                    if (ex->trace) ex->trace->first_byte = now;
                }
                std::string text;
                if (res.interim()) {
                    text = response_for_caller(h, {}, false);
                } else if (h.status == 101) {
                    if (!ex->upgrade) {
                        if (!co_await flush()) co_return out;
                        out.status = 502;
                        co_await send_error(
                            *conn, 502, "bad_origin_response",
                            fmt::format("the service behind {} switched protocols although the "
                                        "request did not ask it to",
                                        route_label));
                        co_return out;
                    }
                    text = response_for_caller(h, {}, true);
                    raw = true;
                    conn->upgraded = true;
                    conn->data_signal.notify();  // pump_request goes raw
                } else {
                    // (A draining relay closes the connection after this response.)
                    out.origin_keep_alive = h.keep_alive;
                    out.keep_alive = h.keep_alive && request.keep_alive && ex->body_done &&
                                     !conn->in_eof && !relay->stopping;
                    const std::string_view connection = !out.keep_alive         ? "close"
                                                        : request.version == 10 ? "keep-alive"
                                                                                : "";
                    text = response_for_caller(h, connection, false);
                    in_body = true;
                }
                if (!res.interim()) {
                    out.status = h.status;
                    conn->last_status = h.status;
                }
                if (ex->drop_service_worker_allowed)
                    text = drop_field(text, "Service-Worker-Allowed");
                pending += text;
                out.bytes += text.size();
            }
            if (in_body && res.done()) {
                out.complete = true;
                if (ex->channel_free() && out.origin_keep_alive && !conn->upgraded && !t->closing &&
                    !relay->stopping && channel_pool::usable(ch)) {
                    t->idle->put(ex->pool_name, std::move(conn->channel));  // `ch` unused below
                    ex->guard->end_stream();
                }
                (void)co_await flush();
                co_return out;
            }
            // More is waiting in the channel: take it before writing.
            if (!ch.readable().empty() && pending.size() < max_pending) continue;
            if (!co_await flush()) co_return out;  // the caller is gone
            continue;
        }
        // Nothing more to take now: the caller gets what there is first.
        if (!co_await flush()) co_return out;
        if (ch.eof() || ch.closed()) {
            if (raw) {
                out.complete = true;
                co_return out;
            }
            if (in_body) {
                res.feed_eof();
                if (res.done() && res.problem() == http_problem::none)
                    out.complete = true;  // a body delimited by the connection's end
                co_return out;
            }
            if (ex->may_retry && !first_head && out.bytes == 0 && !conn->in_eof) {
                out.retry = true;  // the origin had closed the kept-alive connection
                co_return out;
            }
            const request_progress p{ex->body_done, conn->in_eof, ex->body_end};
            co_await end_without_answer(*relay, *conn, *ex, end_without_head(false, p), route_label,
                                        ex->body_detail, out);
            co_return out;
        }
        if (conn->in_eof && !raw) {  // the caller hung up
            if (!in_body) {
                const request_progress p{ex->body_done, true, ex->body_end};
                co_await end_without_answer(*relay, *conn, *ex, end_without_head(false, p),
                                            route_label, ex->body_detail, out);
            }
            co_return out;
        }
        const auto wait_until = raw ? steady::time_point::max() : deadline;
        if (!co_await ch.wait_readable(wait_until)) {
            if (in_body) co_return out;  // the origin went quiet mid-response
            // The time for the head runs from when the whole request was
            // sent: a body still coming in is pump_request's to time.
            if (!ex->body_done && !ex->body_end) {
                deadline = steady::now() + idle;
                continue;
            }
            if (ex->body_done && steady::now() < ex->body_done_at + idle) {
                deadline = ex->body_done_at + idle;
                continue;
            }
            const request_progress p{ex->body_done, conn->in_eof, ex->body_end};
            co_await end_without_answer(*relay, *conn, *ex, end_without_head(true, p), route_label,
                                        ex->body_detail, out);
            co_return out;
        }
    }
}

}  // namespace

asio::awaitable<bool> proxy_exchange(std::shared_ptr<relay_state> relay,
                                     std::shared_ptr<public_conn> conn, http_tracker request,
                                     http_head head, std::unique_ptr<request_trace> trace) {
    const auto executor = co_await asio::this_coro::executor;
    const auto start = steady::now();
    const auto live = relay->live();  // this request's settings (a reload: the next one's)
    const relay_config& cfg = live->config;
    conn->last_status = 0;
    request_record record{relay, conn, start, "none", "none", 0, 0, std::move(trace)};
    request_trace* const traced = record.trace.get();
    if (traced) traced->admission_start = start;
    if (const auto a = check_stopping(relay->stopping); !a.admitted()) {
        co_await send_refusal(*relay, *conn, a);
        co_return false;
    }
    if (const auto a = check_framing(head); !a.admitted()) {
        co_await send_refusal(*relay, *conn, a);
        co_return false;
    }
    // Over the proxy hop (cluster_hop.hpp) a connection is bound to one
    // route: the share API, and any other route, are not its to call.
    if (conn->hop && is_share_api(cfg, head)) {
        co_await send_misdirected(*relay, *conn);
        co_return false;
    }
    // The share API (share_api.hpp) is the relay's, not a name's.
    if (is_share_api(cfg, head)) co_return co_await serve_share_api(relay, conn, head);
    const std::string* host = head.find("Host");
    auto route =
        route_request(host ? *host : std::string_view{}, head.target, cfg.domain, routing_of(cfg));
    if (const auto a = check_route(route); !a.admitted()) {
        co_await send_refusal(*relay, *conn, a);
        co_return false;
    }
    if (conn->hop && (route->tenant != conn->hop->tenant || route->name != conn->hop->name)) {
        co_await send_misdirected(*relay, *conn);
        co_return false;
    }
    // No tunnel of this relay publishes it and another relay of the cluster
    // holds it attached: proxied there (cluster_hop.hpp) from now on. Never
    // from a connection that came over a hop (no second hop, no loops).
    if (relay->cluster && !conn->hop && !relay->route(conn->worker, route->tenant, route->name)) {
        if (auto owner = relay->cluster->owner(route->tenant, route->name)) {
            auto op = hop_to_owner(relay, conn, head, *route, std::move(*owner));
            if (co_await std::move(op) == hop_result::done) co_return false;
            // The owner is gone and a lease holds the name: the request waits
            // for its tunnel again (serve_connection, hold_for_lease).
            conn->retry = std::make_unique<retried_request>(
                retried_request{std::move(request), std::move(head), std::move(record.trace)});
            co_return true;
        }
    }
    const std::string label = fmt::format("{}/{}", route->tenant, route->name);
    // The tunnel, when it is pinned to this worker (serve_connection handed
    // the connection here); one on another worker counts as offline.
    auto t = relay->find(conn->worker, route->tenant, route->name);
    // Per-tenant/route series only for a route a tunnel publishes: callers
    // naming made-up tenants or names must not fill the bounded label sets
    // (and push real tenants into "other"); theirs count under "none".
    if (t) {
        record.tenant = route->tenant;
        record.route = route->name;
    }
    const auto admitted = admit(*relay, *route, t.get(), std::chrono::system_clock::now());
    if (t && t->breaker) t->breaker_seen = t->breaker->state();
    if (!admitted.admitted()) {
        co_await send_refusal(*relay, *conn, admitted);
        co_return false;
    }
    // Who may call the name (visitor_access.hpp): before any channel opens.
    // A copy: the publisher may cancel the name while a password is checked.
    // The operator's visitors.names entry as of this request wins (a reload
    // applies to published names too), else what the name was published with.
    const auto access_it = t->access.find(route->name);
    const auto* configured = configured_access(cfg.visitors, route->tenant, route->name);
    const access_policy access = configured                     ? *configured
                                 : access_it != t->access.end() ? access_it->second
                                                                : access_policy{};
    const visitor_decision visitor = co_await gate_visitor(relay, *conn, *route, head, access);
    if (!visitor.allowed()) co_return false;
    if (traced) traced->admitted = steady::now();
    ++relay->in_flight;
    ++t->active_streams;
    ++t->requests;
    flight_guard guard{relay, t};
    auto ex =
        std::make_shared<exchange_state>(executor, std::move(request), *t->breaker, admitted.probe);
    ex->guard = &guard;
    ex->trace = traced;
    ex->start = start;
    ex->drop_service_worker_allowed = !route->by_host;
    response_outcome outcome;

    // The origin never sees the visitor's credential.
    http_head origin_head = head;
    strip_visitor_credentials(origin_head.fields, access, visitor);
    if (traced) set_trace_fields(origin_head, *traced);  // its parent: the tunnel hop
    const std::string text =
        request_for_origin(origin_head, route->target, forwarding{conn->peer_ip, conn->secure()});
    const auto idle = cfg.limits.idle_timeout;
    ex->upgrade = head.upgrade;
    if (ex->request.done()) ex->finish_body();
    const bool retryable = ex->body_done && !ex->upgrade && is_idempotent(head.method);
    ex->release_early = ex->body_done && !ex->upgrade;
    ex->pool_name = route->name;
    if (traced) traced->hop_start = steady::now();
    // A channel: an idle one from the tunnel's keep-alive pool, else a new
    // one. A pooled channel whose origin connection turns out closed is
    // swapped for a new one when the request can be sent again.
    for (int attempt = 0;; ++attempt) {
        conn->channel = attempt == 0 ? t->idle->take(route->name) : nullptr;
        ex->reused = conn->channel != nullptr;
        ex->may_retry = ex->reused && retryable;
        if (!conn->channel) {
            const std::uint32_t port = t->names.count(route->name) ? t->names[route->name] : 80;
            auto ch =
                co_await t->ssh->open_forwarded(route->name, port, conn->peer_ip, conn->peer_port,
                                                steady::now() + channel_open_timeout);
            if (!ch) {
                // The tunnel dropped before the request started (no byte of it
                // entered the tunnel) while its lease holds the name: the
                // request waits for the tunnel to come back, here or on
                // another relay (serve_connection, hold_for_lease).
                const bool dropped = t->closing || !t->ssh || t->ssh->closed();
                if (dropped && t->lease != 0 && attempt == 0 && cfg.queue.max_requests > 0 &&
                    conn->hop_requeues < max_hop_requeues && !relay->stopping) {
                    ++conn->hop_requeues;
                    relay->metrics.queued.with({"requeued"}).inc();
                    spdlog::debug(
                        "{}: its tunnel dropped before the request started; it waits "
                        "for the tunnel again",
                        label);
                    conn->retry = std::make_unique<retried_request>(retried_request{
                        std::move(ex->request), std::move(head), std::move(record.trace)});
                    co_return true;
                }
                co_await end_without_answer(*relay, *conn, *ex, exchange_end::origin_unreachable,
                                            label, ch.error().message, outcome);
                co_return false;
            }
            conn->channel = std::move(*ch);
        }
        // Marked started before its first byte enters the tunnel: a request
        // that waited for a leased name gives the name's turn to the next
        // one, and is never queued or sent again (unless idempotent, above).
        conn->turn.reset();
        if (traced) {
            traced->reused = ex->reused;
            traced->attempts = attempt + 1;
        }
        if (co_await write_channel(*conn->channel, text, steady::now() + idle)) {
            if (traced) traced->head_sent = steady::now();
            if (!ex->body_done || ex->upgrade) break;  // pump_request sends the rest
            outcome = co_await pump_response(relay, conn, ex, t, head, label);
            if (!outcome.retry) break;
            conn->channel.reset();
            continue;
        }
        conn->channel.reset();
        if (ex->may_retry) continue;
        // A kept-alive channel the origin was closing says nothing about it.
        const auto end =
            ex->reused ? exchange_end::origin_closed : exchange_end::origin_unreachable;
        co_await end_without_answer(*relay, *conn, *ex, end, label,
                                    "the tunnel closed while the request was sent", outcome);
        co_return false;
    }
    // Null when pump_response put the channel back already (channel_free).
    ssh::server_channel* chp = conn->channel.get();
    t->bytes_to_origin += text.size();

    if (ex->body_done && !ex->upgrade) {
        ex->pump_done = true;  // and pump_response ran in the loop above
    } else {
        core::spawn(executor, pump_request(relay, conn, ex), "relay request body pump");
        outcome = co_await pump_response(relay, conn, ex, t, head, label);
    }
    ex->response_over = true;
    bool keep =
        outcome.complete && outcome.keep_alive && !conn->upgraded && !conn->in_eof && ex->body_done;
    if (!ex->pump_done) {
        // The origin answered before the whole body was sent, the exchange
        // failed, or an upgraded connection ended: stop the pump. Waiting for
        // a 101 that did not come is the only case that keeps the connection.
        if (!ex->body_done || conn->upgraded) {
            keep = false;
            ex->abort = true;
            if (chp) chp->close();
        }
        conn->data_signal.notify();
        while (!ex->pump_done)
            (void)co_await ex->done_signal.wait(steady::now() + std::chrono::seconds(5));
    }
    t->bytes_to_origin += ex->bytes_up;
    record.bytes_in = ex->bytes_up + text.size();
    record.bytes_out = outcome.bytes;
    relay->metrics.bytes.with({t->policy.tenant, "to_origin"})
        .inc(static_cast<double>(ex->bytes_up + text.size()));
    relay->metrics.bytes.with({t->policy.tenant, "from_origin"})
        .inc(static_cast<double>(outcome.bytes));
    relay->metrics.breaker_open.with({t->policy.tenant, route->name})
        .set(t->breaker->state() == pool::breaker_state::closed ? 0 : 1);
    // Back to the pool when the origin keeps its connection and the exchange
    // ended cleanly, whatever the caller does next; else closed.
    const bool reusable = outcome.complete && outcome.origin_keep_alive && ex->body_done &&
                          !ex->upgrade && !conn->upgraded && !t->closing && !relay->stopping;
    if (reusable && conn->channel && channel_pool::usable(*conn->channel))
        t->idle->put(route->name, std::move(conn->channel));
    else
        conn->channel.reset();
    if (!outcome.complete && outcome.status == 0) spdlog::debug("{}: request ended early", label);
    co_return keep;
}

}  // namespace tunnel::relay
