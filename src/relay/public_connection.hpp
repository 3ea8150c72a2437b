// The relay's public (caller-facing) side (ARCHITECTURE §5): the accept loop,
// one connection per accepted socket (plain or TLS behind public_stream),
// request heads read with deadlines, JSON error responses, and the serve loop
// that hands the first request to the tunnel attach (tunnel_attach.hpp) or
// every request to the proxy (proxy_exchange.hpp). Internal to relay/.
#pragma once

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "core/ascii.hpp"
#include "core/beast.hpp"
#include "core/wake_signal.hpp"
#include "relay/admission.hpp"
#include "relay/body_rate.hpp"
#include "relay/connection_gate.hpp"
#include "relay/request_queue.hpp"
#include "relay/request_trace.hpp"
#include "ssh/server_session.hpp"

namespace tunnel::relay {

class relay_state;

// The public side of a connection, plain or TLS; the proxy is written once
// against this.
class public_stream {
  public:
    virtual ~public_stream() = default;
    virtual asio::awaitable<std::size_t> read_some(asio::mutable_buffer b,
                                                   boost::system::error_code& ec) = 0;
    virtual asio::awaitable<void> write(asio::const_buffer b, boost::system::error_code& ec) = 0;
    virtual asio::awaitable<std::size_t> write_some(asio::const_buffer b,
                                                    boost::system::error_code& ec) = 0;
    // Writes what the socket takes now without waiting (plain TCP; a TLS
    // stream takes nothing this way): the bytes written, 0 with no error
    // when it would block. Saves write_caller a timer and a trip through the
    // scheduler for a write the socket buffer has room for.
    virtual std::size_t try_write(asio::const_buffer b, boost::system::error_code& ec) = 0;
    virtual void cancel() = 0;
    virtual void close() = 0;
    [[nodiscard]] virtual bool secure() const = 0;
};

// public_stream over a socket or an ssl::stream; the attach takes next() for
// its WebSocket.
template <class S>
class stream_impl final : public public_stream {
  public:
    template <class... A>
    explicit stream_impl(A&&... a) : s_(std::forward<A>(a)...) {}

    S& next() { return s_; }

    asio::awaitable<std::size_t> read_some(asio::mutable_buffer b,
                                           boost::system::error_code& ec) override {
        std::size_t n =
            co_await s_.async_read_some(b, asio::redirect_error(asio::use_awaitable, ec));
        co_return n;
    }
    asio::awaitable<void> write(asio::const_buffer b, boost::system::error_code& ec) override {
        co_await asio::async_write(s_, b, asio::redirect_error(asio::use_awaitable, ec));
    }
    asio::awaitable<std::size_t> write_some(asio::const_buffer b,
                                            boost::system::error_code& ec) override {
        std::size_t n =
            co_await s_.async_write_some(b, asio::redirect_error(asio::use_awaitable, ec));
        co_return n;
    }
    std::size_t try_write(asio::const_buffer b, boost::system::error_code& ec) override {
        ec = {};
        if constexpr (std::is_same_v<S, asio::ip::tcp::socket>) {
            if (!s_.is_open()) {
                ec = asio::error::bad_descriptor;
                return 0;
            }
            for (;;) {
                const auto n =
                    ::send(s_.native_handle(), b.data(), b.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n >= 0) return static_cast<std::size_t>(n);
                if (errno == EINTR) continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK)
                    ec = boost::system::error_code(errno, boost::system::system_category());
                return 0;
            }
        } else {
            return 0;
        }
    }
    void cancel() override {
        boost::system::error_code ignored;
        beast::get_lowest_layer(s_).cancel(ignored);
    }
    void close() override {
        boost::system::error_code ignored;
        auto& sock = beast::get_lowest_layer(s_);
        sock.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
        sock.close(ignored);
    }
    [[nodiscard]] bool secure() const override { return !std::is_same_v<S, asio::ip::tcp::socket>; }

  private:
    S s_;
};

using plain_stream = stream_impl<asio::ip::tcp::socket>;
using tls_stream = stream_impl<asio::ssl::stream<asio::ip::tcp::socket>>;

// A connection that came over the cluster's proxy hop (cluster_hop.hpp):
// the route the preamble of its current request named (the request must
// name that route: others are answered 421; each request comes with a
// preamble of its own) and how that caller reached the sending relay.
struct hop_binding {
    std::string node;  // the sending relay (cluster.node)
    std::string tenant;
    std::string name;
    bool https = false;
    // The sender asked to be told when the request starts (TUNNEL-HOP/2:
    // announce_start in cluster_hop.hpp), and whether it was told.
    bool announce = false;
    bool announced = false;
};

// A request the proxy hop could not send (the relay holding its name's
// tunnel was unreachable) while a lease holds the name: served again from
// the queue step (hop_exchange.hpp, hop_result::requeue).
struct retried_request {
    http_tracker tracker;
    http_head head;
    std::unique_ptr<request_trace> trace;  // null: tracing is off
};

// One public connection: its stream, the caller bytes read but not yet
// forwarded, and the channel kept for keep-alive reuse. The functions that
// answer callers (error_response ... send_refusal) are in
// public_response.cpp.
struct public_conn {
    public_conn(const asio::any_io_executor& ex, std::shared_ptr<public_stream> s,
                const asio::ip::tcp::endpoint& remote)
        : stream(std::move(s)),
          peer(remote),
          peer_ip(remote.address().to_string()),
          peer_port(remote.port()),
          data_signal(ex),
          room_signal(ex) {}

    std::shared_ptr<public_stream> stream;
    unsigned worker = 0;  // relay_state::workers index: the thread serving it now
    asio::ip::tcp::endpoint peer;
    std::string peer_ip;
    std::uint16_t peer_port;
    // Over the proxy hop: the route it is bound to; peer_ip is then the
    // caller's as the sending relay vouched for it (peer: that relay).
    std::optional<hop_binding> hop;
    std::string in;        // caller bytes not yet forwarded
    std::size_t head = 0;  // consumed prefix of `in`
    bool in_eof = false;   // the caller closed (or the read failed)
    bool closed = false;
    bool upgraded = false;          // bytes flow raw both ways (WebSocket through the tunnel)
    bool reader_running = false;    // read_public is reading the stream
    bool detaching = false;         // the reader must stop: the socket moves to another worker
    int last_status = 0;            // of the response (or error) sent last, for metrics
    core::wake_signal data_signal;  // the reader appended or hit EOF
    // Set while a hop exchange whose request went whole watches for the
    // caller hanging up without a pump of its own (hop_exchange.cpp): called
    // once when the reader hits EOF or the connection is closed.
    std::function<void()> on_hangup;
    core::wake_signal room_signal;  // the consumer freed space
    // The channel of the request being proxied; between requests it is back
    // in the tunnel's keep-alive pool (channel_pool.hpp) or closed.
    std::unique_ptr<ssh::server_channel> channel;
    // The name's turn in the request queue while a request that waited for
    // a leased name goes to its tunnel; dropped once the request is marked
    // started (lease_hold.hpp).
    std::unique_ptr<request_queue::ticket> turn;
    std::unique_ptr<retried_request> retry;  // set by proxy_exchange: wait and go again
    unsigned hop_requeues = 0;               // times a request went back to wait (bounded)
    // limits.write_timeout: how long one write to the caller may make no progress.
    std::chrono::milliseconds write_timeout{std::chrono::seconds(30)};

    // The caller reached the relay over TLS (for the forwarding fields and
    // cookies): this stream's, or over the hop the sending relay's.
    [[nodiscard]] bool secure() const { return hop ? hop->https : stream->secure(); }
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
        hung_up();
    }
    void hung_up() {
        if (!on_hangup) return;
        const auto call = std::move(on_hangup);
        on_hangup = nullptr;
        call();
    }
};

// "Not Found" for 404; "Error" for a status the relay does not send
// (core::http_reason).
[[nodiscard]] std::string_view reason_phrase(int status);

// A JSON error response: {"error": code, "message": message}; always closes
// the connection (the request body, if any, was not read).
[[nodiscard]] std::string error_response(int status, std::string_view code,
                                         std::string_view message,
                                         std::optional<long long> retry_after = std::nullopt);

// How a write to the caller ended.
enum class write_outcome {
    done,
    failed,         // the caller is gone (or the connection was closed)
    write_timeout,  // one write made no progress within conn.write_timeout
    too_slow,       // the caller fell below the minimum body rate (body_rate.hpp)
};

// Writes `data` to the caller. Every write must make progress within
// conn.write_timeout, and with `rate` the caller must keep up with it (the
// time spent waiting to write is charged to it, the bytes written credited).
// On write_timeout or too_slow the stream is cancelled (the connection is
// done for); the caller closes it.
asio::awaitable<write_outcome> write_caller(public_conn& conn, std::string_view data,
                                            body_rate* rate = nullptr);

// Writes `text` to the caller within conn.write_timeout; a failed write is
// ignored (the reader sees it).
asio::awaitable<void> send(public_conn& conn, std::string text);

// Sends error_response(...), records the status for metrics, closes `conn`.
asio::awaitable<void> send_error(public_conn& conn, int status, std::string_view code,
                                 std::string message,
                                 std::optional<long long> retry_after = std::nullopt);

// Counts a refusal (count_refusal) and answers it with send_error.
asio::awaitable<void> send_refusal(relay_state& relay, public_conn& conn, const admission& refused);

// ASCII case-insensitive equality (header names, auth schemes).
using core::iequals;

// Accepts on worker `worker`'s acceptor until it is closed; each socket is
// served by its own coroutine on that worker, and moved to the worker of the
// tunnel a request is routed to (docs/relay.md "Threading model").
asio::awaitable<void> accept_public(std::shared_ptr<relay_state> relay, unsigned worker);

// Serves a connection that came over the proxy hop, once its preamble was
// verified (cluster_hop.cpp), as a public connection on worker 0 bound to
// `hop`'s route, with `client_ip` as the caller's address; `unread`: the
// bytes read after the preamble. Later requests on it come with preambles
// of their own (next_hop_preamble).
asio::awaitable<void> serve_hop(std::shared_ptr<relay_state> relay, asio::ip::tcp::socket sock,
                                asio::ip::tcp::endpoint peer, std::string unread,
                                std::string client_ip, hop_binding hop,
                                connection_gate::ticket ticket);

}  // namespace tunnel::relay
