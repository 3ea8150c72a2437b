#include "relay/public_connection.hpp"

#include <algorithm>
#include <cctype>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "core/spawn.hpp"
#include "relay/http_tracker.hpp"
#include "relay/proxy_exchange.hpp"
#include "relay/relay_state.hpp"
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

std::string error_response(int status, std::string_view code, std::string_view message,
                           std::optional<long long> retry_after) {
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

asio::awaitable<void> send(public_conn& conn, std::string text) {
    error_code ec;
    co_await conn.stream->write(asio::buffer(text), ec);
}

asio::awaitable<void> send_error(public_conn& conn, int status, std::string_view code,
                                 std::string message, std::optional<long long> retry_after) {
    std::string text = error_response(status, code, message, retry_after);
    conn.last_status = status;
    co_await send(conn, std::move(text));
    conn.close();
}

asio::awaitable<void> send_refusal(relay_state& relay, public_conn& conn,
                                   const admission& refused) {
    count_refusal(relay, refused);
    co_await send_error(conn, refused.status, refused.code, refused.message, refused.retry_after);
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

// ---------------------------------------------------------------- reading

namespace {

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

// Registers a public connection (or its stream, before there is one) in
// relay.owned: a shutdown closes it whatever it is doing (TLS handshake, head
// read, proxying, idle keep-alive).
template <class T>
core::close_registry::handle owned_by(relay_state& relay, const std::shared_ptr<T>& c) {
    return relay.owned.add("public connection", [weak = std::weak_ptr<T>(c)] {
        if (auto p = weak.lock()) p->close();
    });
}

std::string_view path_of(std::string_view target) {
    auto q = target.find('?');
    return q == std::string_view::npos ? target : target.substr(0, q);
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
            core::spawn(ex, read_public(conn), "relay public connection reader");
        }
        bool keep = co_await proxy_exchange(relay, conn, std::move(tracker), std::move(head));
        if (!keep || relay->stopping) break;  // draining: no next request on this connection
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
    core::close_registry::handle owned;
    try {
        if (relay->tls_context) {
            auto s = std::make_shared<tls_stream>(std::move(sock), *relay->tls_context);
            owned = owned_by(*relay, s);
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
        owned = owned_by(*relay, conn);
        co_await serve_connection(relay, conn);
    } catch (const std::exception& e) {
        spdlog::error("public connection from {}: {}", peer.address().to_string(), e.what());
        if (stream) stream->close();
    }
}

}  // namespace

// ---------------------------------------------------------------- accept loop

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
        core::spawn(relay->io, serve_socket(relay, std::move(sock)), "relay public connection");
    }
}

}  // namespace tunnel::relay
