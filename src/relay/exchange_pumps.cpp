#include "relay/exchange_pumps.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/spawn.hpp"
#include "relay/admission.hpp"
#include "relay/body_rate.hpp"
#include "relay/proxy_headers.hpp"
#include "relay/request_trace.hpp"

namespace tunnel::relay {

namespace {

using steady = std::chrono::steady_clock;
using error_code = boost::system::error_code;

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

}  // namespace

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

}  // namespace tunnel::relay
