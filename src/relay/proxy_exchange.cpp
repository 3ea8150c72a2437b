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
#include "relay/public_connection.hpp"
#include "relay/public_route.hpp"
#include "relay/relay_state.hpp"
#include "relay/response_head_filter.hpp"

namespace tunnel::relay {

namespace {

using steady = std::chrono::steady_clock;
using error_code = boost::system::error_code;

constexpr auto channel_open_timeout = std::chrono::seconds(10);

// The head sent to the origin: the target without the /t/<tenant>/<name>
// prefix, caller-supplied X-Forwarded-* replaced by ours.
std::string origin_head(const http_head& head, const std::string& target, const public_conn& conn) {
    std::string out;
    out.reserve(512);
    out += head.method;
    out += ' ';
    out += target;
    out += head.version == 10 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n";
    for (const auto& f : head.fields) {
        if (iequals(f.name, "X-Forwarded-For") || iequals(f.name, "X-Forwarded-Proto") ||
            iequals(f.name, "X-Forwarded-Host"))
            continue;
        out += f.name;
        out += ": ";
        out += f.value;
        out += "\r\n";
    }
    out += "X-Forwarded-For: ";
    out += conn.peer_ip;
    out += conn.stream->secure() ? "\r\nX-Forwarded-Proto: https\r\n"
                                 : "\r\nX-Forwarded-Proto: http\r\n";
    if (const auto* host = head.find("Host")) {
        out += "X-Forwarded-Host: ";
        out += *host;
        out += "\r\n";
    }
    out += "\r\n";
    return out;
}

// Writes conn.buffered()[offset, offset+n) or `text` to the channel as the
// peer's window allows. False when the channel closed or the deadline passed.
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

struct exchange_state {
    explicit exchange_state(const asio::any_io_executor& ex, http_tracker req)
        : request(std::move(req)), done_signal(ex) {}
    steady::time_point start = steady::now();  // the head has been read
    http_tracker request;
    bool upgrade = false;
    bool request_done = false;
    bool abort = false;
    std::uint64_t bytes_up = 0;
    core::wake_signal done_signal;
    // Path-routed requests: every tenant shares the relay's browser origin,
    // so Service-Worker-Allowed never reaches the caller (docs/relay.md).
    std::optional<response_head_filter> head_filter;
};

// Caller -> origin: the request body (raw, as the tracker delimits it), or
// everything for an upgraded connection.
asio::awaitable<void> pump_request(std::shared_ptr<relay_state> relay,
                                   std::shared_ptr<public_conn> conn,
                                   std::shared_ptr<exchange_state> ex) {
    ssh::server_channel& ch = *conn->channel;  // kept until request_done (proxy_exchange waits)
    const auto idle = relay->config.limits.idle_timeout;
    while (!ex->abort && !ch.closed()) {
        const std::size_t avail = conn->buffered().size();
        std::size_t n = 0;
        if (avail > 0) {
            if (conn->upgraded || ex->upgrade) {
                n = avail;
            } else {
                n = ex->request.feed(conn->buffered());
                if (ex->request.problem() != http_problem::none) {
                    ex->abort = true;
                    ch.close();
                    break;
                }
            }
        }
        if (n == 0) {
            if (conn->in_eof) {
                if (ex->upgrade) ch.send_eof();
                break;
            }
            const auto deadline = ex->upgrade ? steady::time_point::max() : steady::now() + idle;
            if (!co_await conn->data_signal.wait(deadline)) {
                ex->abort = true;  // a caller that stalls mid-body
                ch.close();
                break;
            }
            continue;
        }
        // Write straight from the connection buffer: views are re-taken after
        // every wait (the reader may have grown the buffer meanwhile).
        std::size_t sent = 0;
        bool ok = true;
        while (sent < n) {
            auto w = ch.write_some(conn->buffered().substr(sent, n - sent));
            if (!w) {
                ok = false;
                break;
            }
            sent += *w;
            if (sent < n && !co_await ch.wait_writable(steady::now() + idle)) {
                ok = false;
                break;
            }
        }
        if (!ok) break;
        conn->consume(n);
        ex->bytes_up += n;
        if (!ex->upgrade && ex->request.done()) break;
    }
    ex->request_done = true;
    ex->done_signal.notify();
}

struct response_outcome {
    bool complete = false;    // the whole response reached the caller
    bool keep_alive = false;  // and the connection and channel may carry another
    int status = 0;
    std::uint64_t bytes = 0;
};

// Origin -> caller: forwards response bytes as they arrive (each chunk is
// written to the caller before the next is read), watching where the
// response ends.
asio::awaitable<response_outcome> pump_response(std::shared_ptr<relay_state> relay,
                                                std::shared_ptr<public_conn> conn,
                                                std::shared_ptr<exchange_state> ex,
                                                std::shared_ptr<tunnel_entry> t, bool head_request,
                                                std::string route_label) {
    ssh::server_channel& ch = *conn->channel;
    auto res = http_tracker::for_response(head_request);
    response_outcome out;
    bool raw = false;
    std::string chunk;
    const auto idle = relay->config.limits.idle_timeout;
    auto deadline = steady::now() + idle;
    for (;;) {
        const std::string_view data = ch.readable();
        std::size_t n = 0;
        if (!data.empty()) {
            if (raw) {
                n = data.size();
            } else {
                n = res.feed(data);
                if (res.problem() != http_problem::none) {
                    spdlog::warn("{}: malformed response from the origin: {}", route_label,
                                 res.problem_detail());
                    if (out.bytes == 0) {
                        t->breaker->on_failure();
                        ++relay->counters.origin_failures;
                        out.status = 502;
                        co_await send_error(
                            *conn, 502, "bad_origin_response",
                            fmt::format("the service behind {} sent a malformed HTTP response: {}",
                                        route_label, res.problem_detail()));
                    }
                    co_return out;
                }
            }
        }
        if (n > 0) {
            chunk.assign(data.data(), n);
            ch.consume(n);
            if (out.bytes == 0) {
                t->breaker->on_success();
                relay->metrics.ttfb.with({t->policy.tenant})
                    .observe(std::chrono::duration<double>(steady::now() - ex->start).count());
            }
            if (res.header_done()) {
                out.status = res.head().status;
                conn->last_status = out.status;
            }
            if (ex->head_filter && !ex->head_filter->done()) chunk = ex->head_filter->feed(chunk);
            error_code ec;
            if (!chunk.empty()) co_await conn->stream->write(asio::buffer(chunk), ec);
            if (ec) co_return out;  // the caller is gone
            out.bytes += n;
            t->bytes_from_origin += n;
            if (!raw && res.header_done() && res.head().status == 101 && ex->upgrade) {
                raw = true;
                conn->upgraded = true;
            }
            if (!raw && res.done()) {
                out.complete = true;
                out.keep_alive = res.head().keep_alive;
                co_return out;
            }
            deadline = steady::now() + idle;
            continue;
        }
        if (ch.eof() || ch.closed()) {
            if (raw) {
                out.complete = true;
                co_return out;
            }
            res.feed_eof();
            if (res.done() && res.problem() == http_problem::none) {
                out.complete = true;  // a body delimited by the connection's end
                co_return out;
            }
            if (out.bytes == 0 && !conn->in_eof) {
                t->breaker->on_failure();
                ++relay->counters.origin_failures;
                out.status = 502;
                co_await send_error(
                    *conn, 502, "origin_closed",
                    fmt::format("the tunnel client closed the connection to {} without an answer: "
                                "is the local service it exposes running?",
                                route_label));
            }
            co_return out;
        }
        if (conn->in_eof && !ex->upgrade) co_return out;  // caller hung up
        const auto wait_until = raw ? steady::time_point::max() : deadline;
        if (!co_await ch.wait_readable(wait_until)) {
            if (out.bytes == 0) {
                t->breaker->on_failure();
                ++relay->counters.origin_failures;
                out.status = 504;
                co_await send_error(*conn, 504, "origin_timeout",
                                    fmt::format("the service behind {} sent nothing for {} ms",
                                                route_label, idle.count()));
            }
            co_return out;
        }
    }
}

// Records a public request in the metrics when it ends, however it ends.
struct request_record {
    std::shared_ptr<relay_state> relay;
    std::shared_ptr<public_conn> conn;
    steady::time_point start;
    std::string tenant = "none";
    std::string route = "none";
    ~request_record() {
        const int s = conn->last_status;
        const char* cls = s >= 500   ? "5xx"
                          : s >= 400 ? "4xx"
                          : s >= 300 ? "3xx"
                          : s >= 200 ? "2xx"
                          : s >= 100 ? "1xx"
                                     : "none";
        relay->metrics.requests.with({tenant, route, cls}).inc();
        if (s > 0)
            relay->metrics.latency.with({tenant}).observe(
                std::chrono::duration<double>(steady::now() - start).count());
    }
};

// Decrements the in-flight counts when a proxied request ends, and tells a
// draining shutdown when the last one did.
struct flight_guard {
    std::shared_ptr<relay_state> relay;
    std::shared_ptr<tunnel_entry> tunnel;
    ~flight_guard() {
        --relay->in_flight;
        --tunnel->active_streams;
        if (relay->in_flight == 0 && relay->on_drained) {
            auto cb = std::move(relay->on_drained);
            relay->on_drained = nullptr;
            asio::post(relay->io, std::move(cb));
        }
    }
};

}  // namespace

asio::awaitable<bool> proxy_exchange(std::shared_ptr<relay_state> relay,
                                     std::shared_ptr<public_conn> conn, http_tracker request,
                                     http_head head) {
    const auto executor = co_await asio::this_coro::executor;
    auto ex = std::make_shared<exchange_state>(executor, std::move(request));
    auto& cfg = relay->config;
    ++relay->counters.requests;
    conn->last_status = 0;
    request_record record{relay, conn, ex->start};
    if (const auto a = check_stopping(relay->stopping); !a.admitted()) {
        co_await send_refusal(*relay, *conn, a);
        co_return false;
    }
    const std::string* host = head.find("Host");
    auto route =
        route_request(host ? *host : std::string_view{}, head.target, cfg.domain, routing_of(cfg));
    if (const auto a = check_route(route); !a.admitted()) {
        co_await send_refusal(*relay, *conn, a);
        co_return false;
    }
    const std::string label = fmt::format("{}/{}", route->tenant, route->name);
    if (!route->by_host) ex->head_filter.emplace("Service-Worker-Allowed");
    record.tenant = route->tenant;
    record.route = route->name;
    auto t = relay->find(route->tenant, route->name);
    if (const auto a = admit(*relay, *route, t.get(), std::chrono::system_clock::now());
        !a.admitted()) {
        co_await send_refusal(*relay, *conn, a);
        co_return false;
    }
    ++relay->in_flight;
    ++t->active_streams;
    ++t->requests;
    flight_guard guard{relay, t};

    // A channel: the previous request's if it went to the same place.
    if (conn->channel && (conn->channel_tunnel != t->id || conn->channel_name != route->name ||
                          conn->channel->closed() || conn->channel->eof()))
        conn->channel.reset();
    if (!conn->channel) {
        const std::uint32_t port = t->names.count(route->name) ? t->names[route->name] : 80;
        auto ch = co_await t->ssh->open_forwarded(route->name, port, conn->peer_ip, conn->peer_port,
                                                  steady::now() + channel_open_timeout);
        if (!ch) {
            t->breaker->on_failure();
            ++relay->counters.origin_failures;
            co_await send_error(
                *conn, 502, "origin_unreachable",
                fmt::format("the tunnel client could not reach the service behind {}: {}", label,
                            ch.error().message));
            co_return false;
        }
        conn->channel = std::move(*ch);
        conn->channel_tunnel = t->id;
        conn->channel_name = route->name;
    }
    ssh::server_channel& ch = *conn->channel;
    const auto idle = cfg.limits.idle_timeout;
    std::string text = origin_head(head, route->target, *conn);
    if (!co_await write_channel(ch, text, steady::now() + idle)) {
        t->breaker->on_failure();
        conn->channel.reset();
        co_await send_error(
            *conn, 502, "origin_unreachable",
            fmt::format("the tunnel to {} closed while the request was sent", label));
        co_return false;
    }
    t->bytes_to_origin += text.size();

    ex->upgrade = head.upgrade;
    if (!ex->upgrade && ex->request.done()) {
        ex->request_done = true;
    } else {
        core::spawn(executor, pump_request(relay, conn, ex), "relay request body pump");
    }
    auto outcome = co_await pump_response(relay, conn, ex, t, head.method == "HEAD", label);
    bool keep = outcome.complete && outcome.keep_alive && head.keep_alive && !conn->upgraded &&
                !conn->in_eof;
    if (!ex->request_done) {
        // The origin answered before the whole body was sent (or the exchange
        // failed): stop the body pump; this connection cannot carry more.
        keep = false;
        ex->abort = true;
        ch.close();
        conn->data_signal.notify();
        while (!ex->request_done)
            (void)co_await ex->done_signal.wait(steady::now() + std::chrono::seconds(5));
    }
    t->bytes_to_origin += ex->bytes_up;
    relay->metrics.bytes.with({t->policy.tenant, "to_origin"})
        .inc(static_cast<double>(ex->bytes_up + text.size()));
    relay->metrics.bytes.with({t->policy.tenant, "from_origin"})
        .inc(static_cast<double>(outcome.bytes));
    relay->metrics.breaker_open.with({t->policy.tenant, route->name})
        .set(t->breaker->state() == pool::breaker_state::closed ? 0 : 1);
    if (!keep || !ch.readable().empty()) conn->channel.reset();
    if (!outcome.complete && outcome.status == 0) spdlog::debug("{}: request ended early", label);
    co_return keep;
}

}  // namespace tunnel::relay
