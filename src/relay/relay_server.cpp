#include "relay/relay_server.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <type_traits>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "core/beast.hpp"
#include "core/wake_signal.hpp"
#include "relay/admin_server.hpp"
#include "relay/http_tracker.hpp"
#include "relay/public_route.hpp"
#include "relay/relay_state.hpp"

namespace tunnel::relay {

namespace {

using steady = std::chrono::steady_clock;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;

constexpr std::size_t ws_chunk = 256 * 1024;  // WebSocket messages and socketpair reads (§5)
constexpr std::size_t public_read_chunk = 64 * 1024;
constexpr std::size_t public_buffer_cap = 1 << 20;  // unsent caller bytes held per connection
constexpr auto channel_open_timeout = std::chrono::seconds(10);

// ---------------------------------------------------------------- responses

std::string_view reason_phrase(int status) {
    switch (status) {
        case 400:
            return "Bad Request";
        case 401:
            return "Unauthorized";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 408:
            return "Request Timeout";
        case 413:
            return "Payload Too Large";
        case 426:
            return "Upgrade Required";
        case 429:
            return "Too Many Requests";
        case 431:
            return "Request Header Fields Too Large";
        case 502:
            return "Bad Gateway";
        case 503:
            return "Service Unavailable";
        case 504:
            return "Gateway Timeout";
        default:
            return "Error";
    }
}

// A JSON error response: {"error": code, "message": message}; always closes
// the connection (the request body, if any, was not read).
std::string error_response(int status, std::string_view code, std::string_view message,
                           std::optional<long long> retry_after = std::nullopt) {
    nlohmann::json j;
    j["error"] = code;
    j["message"] = message;
    std::string body = j.dump();
    body += '\n';
    std::string out =
        fmt::format("HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
                    status, reason_phrase(status), body.size());
    if (retry_after) out += fmt::format("Retry-After: {}\r\n", *retry_after);
    out += "Connection: close\r\nCache-Control: no-store\r\n\r\n";
    out += body;
    return out;
}

// ---------------------------------------------------------------- streams

// The public side of a connection, plain or TLS; the proxy is written once
// against this.
class public_stream {
  public:
    virtual ~public_stream() = default;
    virtual asio::awaitable<std::size_t> read_some(asio::mutable_buffer b, error_code& ec) = 0;
    virtual asio::awaitable<void> write(asio::const_buffer b, error_code& ec) = 0;
    virtual void cancel() = 0;
    virtual void close() = 0;
    [[nodiscard]] virtual bool secure() const = 0;
};

template <class S>
class stream_impl final : public public_stream {
  public:
    template <class... A>
    explicit stream_impl(A&&... a) : s_(std::forward<A>(a)...) {}

    S& next() { return s_; }

    asio::awaitable<std::size_t> read_some(asio::mutable_buffer b, error_code& ec) override {
        std::size_t n =
            co_await s_.async_read_some(b, asio::redirect_error(asio::use_awaitable, ec));
        co_return n;
    }
    asio::awaitable<void> write(asio::const_buffer b, error_code& ec) override {
        co_await asio::async_write(s_, b, asio::redirect_error(asio::use_awaitable, ec));
    }
    void cancel() override {
        error_code ignored;
        beast::get_lowest_layer(s_).cancel(ignored);
    }
    void close() override {
        error_code ignored;
        auto& sock = beast::get_lowest_layer(s_);
        sock.shutdown(tcp::socket::shutdown_both, ignored);
        sock.close(ignored);
    }
    [[nodiscard]] bool secure() const override { return !std::is_same_v<S, tcp::socket>; }

  private:
    S s_;
};

using plain_stream = stream_impl<tcp::socket>;
using tls_stream = stream_impl<ssl::stream<tcp::socket>>;

// ---------------------------------------------------------------- public connections

struct public_conn {
    public_conn(const asio::any_io_executor& ex, std::shared_ptr<public_stream> s,
                const tcp::endpoint& peer)
        : stream(std::move(s)),
          peer_ip(peer.address().to_string()),
          peer_port(peer.port()),
          data_signal(ex),
          room_signal(ex) {}

    std::shared_ptr<public_stream> stream;
    std::string peer_ip;
    std::uint16_t peer_port;
    std::string in;        // caller bytes not yet forwarded
    std::size_t head = 0;  // consumed prefix of `in`
    bool in_eof = false;   // the caller closed (or the read failed)
    bool closed = false;
    bool upgraded = false;          // bytes flow raw both ways (WebSocket through the tunnel)
    int last_status = 0;            // of the response (or error) sent last, for metrics
    core::wake_signal data_signal;  // the reader appended or hit EOF
    core::wake_signal room_signal;  // the consumer freed space
    // The channel of the last request, kept for the next one on this
    // connection to the same tunnel and name (keep-alive reuse).
    std::unique_ptr<ssh::server_channel> channel;
    std::uint64_t channel_tunnel = 0;
    std::string channel_name;

    [[nodiscard]] std::string_view buffered() const noexcept {
        return std::string_view(in).substr(head);
    }
    void consume(std::size_t n) {
        head = std::min(head + n, in.size());
        if (head == in.size()) {
            in.clear();
            head = 0;
        } else if (head >= 64 * 1024) {
            in.erase(0, head);
            head = 0;
        }
        room_signal.notify();
    }
    void close() {
        if (closed) return;
        closed = true;
        stream->close();
        data_signal.notify();
        room_signal.notify();
    }
};

// Reads caller bytes for the rest of the connection once the first request
// was routed (the first head is read inline: an attach takes the stream).
asio::awaitable<void> read_public(std::shared_ptr<public_conn> conn) {
    std::vector<char> buf(public_read_chunk);
    while (!conn->closed) {
        if (conn->buffered().size() >= public_buffer_cap) {
            co_await conn->room_signal.wait(steady::time_point::max());
            continue;
        }
        error_code ec;
        std::size_t n = co_await conn->stream->read_some(asio::buffer(buf), ec);
        if (n > 0) conn->in.append(buf.data(), n);
        if (ec) {
            conn->in_eof = true;
            // The caller hung up: close the channel so the origin stops
            // generating (a WebSocket passed through half-closes instead).
            if (conn->channel && !conn->upgraded) conn->channel->close();
            conn->data_signal.notify();
            break;
        }
        conn->data_signal.notify();
    }
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
    std::vector<char> buf(16 * 1024);
    error_code ec;
    std::size_t n = co_await conn.stream->read_some(asio::buffer(buf), ec);
    timer.cancel();
    if (n > 0) conn.in.append(buf.data(), n);
    if (ec) {
        timed_out = steady::now() >= deadline;
        if (!timed_out) conn.in_eof = true;
        co_return false;
    }
    co_return true;
}

asio::awaitable<void> send(public_conn& conn, std::string text) {
    error_code ec;
    co_await conn.stream->write(asio::buffer(text), ec);
}

asio::awaitable<void> send_error(public_conn& conn, int status, std::string_view code,
                                 std::string message,
                                 std::optional<long long> retry_after = std::nullopt) {
    std::string text = error_response(status, code, message, retry_after);
    conn.last_status = status;
    co_await send(conn, std::move(text));
    conn.close();
}

std::string_view path_of(std::string_view target) {
    auto q = target.find('?');
    return q == std::string_view::npos ? target : target.substr(0, q);
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

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
            error_code ec;
            co_await conn->stream->write(asio::buffer(chunk), ec);
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

void limit_hit(relay_state& relay, std::string_view which) {
    relay.metrics.limits_hit.with({which}).inc();
}

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

// One request on a public connection, after its head was read. Returns
// whether the connection may carry another request.
asio::awaitable<bool> proxy_exchange(std::shared_ptr<relay_state> relay,
                                     std::shared_ptr<public_conn> conn,
                                     std::shared_ptr<exchange_state> ex, http_head head) {
    auto& cfg = relay->config;
    ++relay->counters.requests;
    conn->last_status = 0;
    request_record record{relay, conn, ex->start};
    if (relay->stopping) {
        co_await send_error(*conn, 503, "shutting_down",
                            "the relay is shutting down; retry in a moment");
        co_return false;
    }
    const std::string* host = head.find("Host");
    auto route = route_request(host ? *host : std::string_view{}, head.target, cfg.domain);
    if (!route) {
        ++relay->counters.bad_requests;
        const int status = route.error().code == core::errc::not_found ? 404 : 400;
        co_await send_error(*conn, status, status == 404 ? "no_route" : "bad_route",
                            route.error().message);
        co_return false;
    }
    const std::string label = fmt::format("{}/{}", route->tenant, route->name);
    record.tenant = route->tenant;
    record.route = route->name;
    auto t = relay->find(route->tenant, route->name);
    if (!t || t->closing || !t->ssh || t->ssh->closed()) {
        co_await send_error(
            *conn, 503, "tunnel_offline",
            fmt::format("no tunnel of tenant {} publishes {:?} right now: start `tunnel connect` "
                        "with --expose {}=HOST:PORT",
                        route->tenant, route->name, route->name));
        co_return false;
    }
    // Policy on every request, not only at attach.
    if (std::chrono::system_clock::now() >= t->policy.expires ||
        !may_publish(t->policy, route->name)) {
        co_await send_error(*conn, 403, "policy",
                            fmt::format("the token of tenant {} no longer allows {:?}",
                                        route->tenant, route->name));
        co_return false;
    }
    const double tenant_ratio =
        cfg.limits.tenant_rps > 0 ? cfg.limits.tenant_burst / cfg.limits.tenant_rps : 2.0;
    auto d = relay->limiter.acquire("tenant/" + route->tenant,
                                    {t->policy.rps, std::max(1.0, t->policy.rps * tenant_ratio)});
    if (d.allowed) {
        d = relay->limiter.acquire("route/" + label,
                                   {cfg.limits.route_rps, std::max(1.0, cfg.limits.route_burst)});
        if (!d.allowed) {
            ++relay->counters.rate_limited;
            limit_hit(*relay, "route_rate");
            co_await send_error(
                *conn, 429, "rate_limited",
                fmt::format("{} is over its limit of {} requests per second; retry after {} s",
                            label, cfg.limits.route_rps, d.retry_after_seconds()),
                d.retry_after_seconds());
            co_return false;
        }
    } else {
        ++relay->counters.rate_limited;
        limit_hit(*relay, "tenant_rate");
        co_await send_error(
            *conn, 429, "rate_limited",
            fmt::format("tenant {} is over its limit of {} requests per second; retry after {} s",
                        route->tenant, t->policy.rps, d.retry_after_seconds()),
            d.retry_after_seconds());
        co_return false;
    }
    if (t->active_streams >= t->policy.max_streams) {
        ++relay->counters.stream_limited;
        limit_hit(*relay, "streams");
        co_await send_error(
            *conn, 503, "stream_limit",
            fmt::format("the tunnel for {} already carries {} concurrent requests (its limit)",
                        label, t->policy.max_streams),
            1);
        co_return false;
    }
    if (!t->breaker->allow()) {
        ++relay->counters.breaker_refused;
        limit_hit(*relay, "breaker");
        const auto wait =
            std::chrono::duration_cast<std::chrono::seconds>(t->breaker->retry_after()).count() + 1;
        co_await send_error(
            *conn, 503, "circuit_open",
            fmt::format("the service behind {} failed {} times in a row; the relay fails fast for "
                        "{} s before trying it again",
                        label, t->breaker->consecutive_failures(), wait),
            wait);
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
        asio::co_spawn(co_await asio::this_coro::executor, pump_request(relay, conn, ex),
                       asio::detached);
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

// ---------------------------------------------------------------- tunnels (attach)

template <class S>
struct ws_link {
    ws_link(std::shared_ptr<stream_impl<S>> s, const asio::any_io_executor& ex, int fd)
        : stream(std::move(s)), ws(stream->next()), pair(ex, fd) {}
    std::shared_ptr<stream_impl<S>> stream;
    websocket::stream<S&> ws;
    asio::posix::stream_descriptor pair;  // the relay's end of the socketpair to libssh
    websocket::close_code close_code = websocket::close_code::normal;
    std::string close_reason = "tunnel closed";
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
    std::string url = relay->public_url(tenant);
    std::string domain = cfg.domain;
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
        [tenant, url, domain, offers_ssh](websocket::response_type& res) {
            res.set(beast::http::field::server, "tunnel-relay");
            res.set("Tunnel-Tenant", tenant);
            res.set("Tunnel-Public-Url", url);
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
    asio::co_spawn(ex, ws_to_ssh(link), asio::detached);
    asio::co_spawn(ex, ssh_to_ws(link), asio::detached);

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
        auto tt = weak.lock();
        auto r = weak_relay.lock();
        if (!tt || !r) return d;
        auto bound = r->publish(tt, address, port);
        if (!bound) {
            ++r->counters.forwards_refused;
            r->metrics.forwards_refused.with({tt->policy.tenant}).inc();
            d.reason = bound.error().message;
            spdlog::warn("tunnel {} ({}): publish refused: {}", tt->id, tt->policy.tenant,
                         d.reason);
            r->audit("publish_refused", {{"tenant", tt->policy.tenant},
                                         {"name", address},
                                         {"reason", d.reason},
                                         {"peer", tt->peer}});
            return d;
        }
        d.accepted = true;
        d.bound_port = *bound;
        spdlog::info("tunnel {} ({}): published {}", tt->id, tt->policy.tenant, address);
        r->audit("publish", {{"tenant", tt->policy.tenant}, {"name", address}, {"peer", tt->peer}});
        return d;
    };
    handlers.on_cancel = [weak, weak_relay](const std::string& address, std::uint32_t) {
        auto tt = weak.lock();
        auto r = weak_relay.lock();
        if (!tt || !r) return;
        r->unpublish(*tt, address);
        std::string name = address;
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        tt->names.erase(name);
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
}

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

// ---------------------------------------------------------------- connections

asio::awaitable<void> serve_connection(std::shared_ptr<relay_state> relay,
                                       std::shared_ptr<public_conn> conn) {
    auto& limits = relay->config.limits;
    auto ex = co_await asio::this_coro::executor;
    bool first = true;
    while (!conn->closed) {
        auto tracker = http_tracker::for_request(
            static_cast<std::uint32_t>(limits.max_header_bytes), limits.max_body_bytes);
        const auto now = steady::now();
        bool started = !conn->buffered().empty();
        auto deadline = now + (first || started ? limits.header_read_timeout : limits.idle_timeout);
        for (;;) {
            // The head is rebuilt from the parsed fields for the origin, so
            // what the parser took (it may take the request line before the
            // rest arrives) is consumed at once and never fed twice.
            if (!conn->buffered().empty()) conn->consume(tracker.feed(conn->buffered()));
            if (tracker.problem() != http_problem::none) {
                ++relay->counters.bad_requests;
                switch (tracker.problem()) {
                    case http_problem::header_too_large:
                        ++relay->counters.oversized;
                        limit_hit(*relay, "header_size");
                        co_await send_error(*conn, 431, "headers_too_large",
                                            fmt::format("the request head is larger than {} bytes",
                                                        limits.max_header_bytes));
                        break;
                    case http_problem::body_too_large:
                        ++relay->counters.oversized;
                        limit_hit(*relay, "body_size");
                        co_await send_error(*conn, 413, "body_too_large",
                                            fmt::format("the request body is larger than {} bytes",
                                                        limits.max_body_bytes));
                        break;
                    default:
                        co_await send_error(
                            *conn, 400, "bad_request",
                            fmt::format("malformed HTTP request: {}", tracker.problem_detail()));
                }
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
                    ++relay->counters.header_timeouts;
                    limit_hit(*relay, "header_timeout");
                    co_await send_error(*conn, 408, "header_timeout",
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
        http_head head = tracker.head();
        if (first && path_of(head.target) == "/v1/tunnel") {
            co_await attach(relay, conn, std::move(head));
            co_return;
        }
        if (first) {
            first = false;
            asio::co_spawn(ex, read_public(conn), asio::detached);
        }
        auto state = std::make_shared<exchange_state>(ex, std::move(tracker));
        bool keep = co_await proxy_exchange(relay, conn, state, std::move(head));
        if (!keep) break;
    }
    conn->channel.reset();
    conn->close();
}

asio::awaitable<void> serve_socket(std::shared_ptr<relay_state> relay, tcp::socket sock) {
    error_code ec;
    const auto peer = sock.remote_endpoint(ec);
    if (ec) co_return;
    sock.set_option(tcp::no_delay(true), ec);
    auto ex = co_await asio::this_coro::executor;
    std::shared_ptr<public_stream> stream;
    try {
        if (relay->tls_context) {
            auto s = std::make_shared<tls_stream>(std::move(sock), *relay->tls_context);
            asio::steady_timer timer(ex);
            timer.expires_after(relay->config.limits.header_read_timeout);
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
        co_await serve_connection(relay, conn);
    } catch (const std::exception& e) {
        spdlog::error("public connection from {}: {}", peer.address().to_string(), e.what());
        if (stream) stream->close();
    }
}

asio::awaitable<void> accept_public(std::shared_ptr<relay_state> relay) {
    auto& acceptor = *relay->public_acceptor;
    for (;;) {
        error_code ec;
        tcp::socket sock =
            co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            if (ec == asio::error::operation_aborted || !acceptor.is_open() || relay->stopping)
                break;
            spdlog::warn("accept on the public listener failed: {}", ec.message());
            continue;
        }
        asio::co_spawn(relay->io, serve_socket(relay, std::move(sock)), asio::detached);
    }
}

core::result<tcp::acceptor> bind_listener(asio::io_context& io, const listen_address& where,
                                          const char* what) {
    error_code ec;
    auto host = where.host.empty() ? std::string("0.0.0.0") : where.host;
    if (host == "localhost") host = "127.0.0.1";
    auto addr = asio::ip::make_address(host, ec);
    if (ec)
        return core::fail(core::errc::invalid_argument,
                          fmt::format("{} address {:?} is not an IP address", what, where.host));
    tcp::endpoint ep(addr, where.port);
    tcp::acceptor acc(io);
    acc.open(ep.protocol(), ec);
    if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acc.bind(ep, ec);
    if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
        return core::fail(core::errc::io_error, fmt::format("cannot listen on {} for the {}: {}",
                                                            where.to_string(), what, ec.message()));
    return acc;
}

}  // namespace

// ---------------------------------------------------------------- relay_server

relay_server::relay_server(std::shared_ptr<relay_state> state) : state_(std::move(state)) {}

relay_server::~relay_server() {
    if (!state_) return;
    error_code ignored;
    if (state_->public_acceptor) state_->public_acceptor->close(ignored);
    if (state_->admin_acceptor) state_->admin_acceptor->close(ignored);
}

core::result<std::unique_ptr<relay_server>> relay_server::create(asio::io_context& io,
                                                                 relay_config config) {
    if (auto problems = validate(config); !problems.empty())
        return core::fail(core::errc::invalid_argument,
                          fmt::format("{}", fmt::join(problems, "\n")));
    auto verifier = token_verifier::load(verifier_options_for(config));
    if (!verifier) return tl::unexpected(verifier.error());
    auto identity = config.host_key_file.empty()
                        ? ssh::server_identity::ephemeral()
                        : ssh::server_identity::load_or_generate(config.host_key_file);
    if (!identity) return tl::unexpected(identity.error());

    auto state = std::make_shared<relay_state>(io, std::move(config), std::move(*verifier),
                                               std::move(*identity));
    auto& cfg = state->config;
    if (!cfg.audit_log.empty()) {
        auto log = observe::audit_log::open(cfg.audit_log);
        if (!log) return tl::unexpected(log.error());
        state->audit_log.emplace(std::move(*log));
    }
    if (cfg.tls) {
        try {
            state->tls_context.emplace(ssl::context::tls_server);
            auto& ctx = *state->tls_context;
            ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                            ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                            ssl::context::no_tlsv1_1);
            ctx.use_certificate_chain_file(cfg.tls->cert_file);
            ctx.use_private_key_file(cfg.tls->key_file, ssl::context::pem);
        } catch (const boost::system::system_error& e) {
            return core::fail(
                core::errc::invalid_argument,
                fmt::format("cannot load the TLS certificate {} / key {}: {}", cfg.tls->cert_file,
                            cfg.tls->key_file, e.code().message()));
        }
        state->tls = true;
    }
    auto pub = bind_listener(io, cfg.listen, "public listener");
    if (!pub) return tl::unexpected(pub.error());
    auto adm = bind_listener(io, cfg.admin_listen, "admin listener");
    if (!adm) return tl::unexpected(adm.error());
    state->public_port = pub->local_endpoint().port();
    state->admin_port = adm->local_endpoint().port();
    state->public_acceptor.emplace(std::move(*pub));
    state->admin_acceptor.emplace(std::move(*adm));
    return std::unique_ptr<relay_server>(new relay_server(std::move(state)));
}

void relay_server::start() {
    asio::co_spawn(state_->io, accept_public(state_), asio::detached);
    start_admin(state_);
}

void relay_server::shutdown(std::function<void()> done) {
    auto st = state_;
    if (st->stopping) return;
    st->stopping = true;
    error_code ignored;
    st->public_acceptor->close(ignored);
    spdlog::info("shutting down: {} requests in flight, {} tunnels", st->in_flight,
                 st->tunnels.size());
    st->audit("shutdown", {{"in_flight", std::to_string(st->in_flight)}});

    // Runs once: disconnect every tunnel, give the disconnects up to a
    // second to reach the clients, then `done`.
    auto finished = std::make_shared<bool>(false);
    auto finish = std::make_shared<std::function<void()>>([st, done, finished]() {
        if (*finished) return;
        *finished = true;
        st->on_drained = nullptr;
        auto tunnels = st->tunnels;
        for (auto& [id, t] : tunnels)
            if (t->close) t->close("relay shutting down");
        auto timer = std::make_shared<asio::steady_timer>(st->io);
        const auto deadline = steady::now() + std::chrono::seconds(1);
        auto poll = std::make_shared<std::function<void()>>();
        std::weak_ptr<std::function<void()>> weak_poll = poll;
        *poll = [st, timer, deadline, done, weak_poll]() {
            if (st->tunnels.empty() || steady::now() >= deadline) {
                error_code e;
                if (st->admin_acceptor) st->admin_acceptor->close(e);
                done();
                return;
            }
            timer->expires_after(std::chrono::milliseconds(20));
            timer->async_wait([keep = weak_poll.lock()](error_code) { (*keep)(); });
        };
        (*poll)();
    });
    if (st->in_flight == 0) {
        asio::post(st->io, [finish] { (*finish)(); });
        return;
    }
    st->on_drained = [finish] { (*finish)(); };
    auto drain = std::make_shared<asio::steady_timer>(st->io);
    drain->expires_after(st->config.shutdown.drain_timeout);
    drain->async_wait([drain, finish, st](error_code e) {
        if (e) return;
        if (st->in_flight > 0)
            spdlog::warn("drain deadline passed with {} requests in flight", st->in_flight);
        (*finish)();
    });
}

std::uint16_t relay_server::public_port() const {
    return state_->public_port;
}
std::uint16_t relay_server::admin_port() const {
    return state_->admin_port;
}
const std::string& relay_server::host_key_fingerprint() const {
    return state_->identity.fingerprint();
}
const std::string& relay_server::jwt_key_fingerprint() const {
    return state_->verifier.key_fingerprint();
}
bool relay_server::tls() const {
    return state_->tls;
}

}  // namespace tunnel::relay
