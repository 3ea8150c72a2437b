#include "observe/admin_http_server.hpp"

#include <algorithm>
#include <array>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/beast.hpp"
#include "core/spawn.hpp"
#include "observe/event_stream.hpp"
#include "observe/metrics.hpp"

namespace tunnel::observe {

namespace {

namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

constexpr std::chrono::milliseconds first_backoff{10};

std::string endpoint_text(const tcp::endpoint& ep) {
    const auto a = ep.address();
    return a.is_v6() ? fmt::format("[{}]:{}", a.to_string(), ep.port())
                     : fmt::format("{}:{}", a.to_string(), ep.port());
}

// A failed read that deserves an answer (the caller sent something wrong),
// or nullopt when the connection just ended (closed, timed out).
std::optional<admin_response> read_failure(const error_code& ec, const admin_server_options& o) {
    if (ec == http::error::header_limit)
        return admin_response::error(
            431, "headers_too_large",
            fmt::format("the request head is larger than {} bytes", o.max_header_bytes));
    if (ec == http::error::body_limit || ec == http::error::buffer_overflow)
        return admin_response::error(
            413, "body_too_large",
            fmt::format("the request body is larger than {} bytes", o.max_body_bytes));
    if (ec.category() == http::make_error_code(http::error::bad_method).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message)
        return admin_response::error(400, "bad_request", "malformed HTTP request");
    return std::nullopt;
}

// An answer that comes later (admin_response::later): `deliver` posts it
// back to this coroutine's executor and wakes it; past `timeout`, or when
// `cancel` (set meanwhile) is called by a close, 504.
asio::awaitable<admin_response> await_later(std::function<void(admin_response::deliver_fn)> later,
                                            std::chrono::milliseconds timeout,
                                            std::function<void()>& cancel) {
    struct slot {
        explicit slot(const asio::any_io_executor& ex) : timer(ex) {}
        asio::steady_timer timer;
        std::optional<admin_response> answer;
    };
    const auto ex = co_await asio::this_coro::executor;
    auto s = std::make_shared<slot>(ex);
    s->timer.expires_after(timeout);
    later([s, ex](admin_response r) {
        asio::post(ex, [s, r = std::move(r)]() mutable {
            if (s->answer) return;
            s->answer = std::move(r);
            s->timer.cancel();
        });
    });
    if (!s->answer) {
        cancel = [s] { s->timer.cancel(); };
        error_code ec;
        co_await s->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        cancel = nullptr;
    }
    if (s->answer) co_return std::move(*s->answer);
    co_return admin_response::error(504, "timeout",
                                    fmt::format("no answer within {} ms", timeout.count()));
}

}  // namespace

struct admin_http_server::connection {
    explicit connection(tcp::socket s) : socket(std::move(s)), deadline(socket.get_executor()) {}
    tcp::socket socket;
    asio::steady_timer deadline;
    std::string peer;
    std::shared_ptr<event_subscriber> events;  // while it serves an event stream
    std::function<void()> cancel_later;        // while it waits for a later answer

    // Closes the socket unless the deadline is moved or cancelled first.
    void arm(std::chrono::milliseconds timeout) {
        deadline.expires_after(timeout);
        deadline.async_wait([weak = self](error_code ec) {
            if (ec) return;
            if (auto c = weak.lock()) {
                error_code ignored;
                c->socket.close(ignored);
            }
        });
    }
    std::weak_ptr<connection> self;  // set once it is owned
};

// Metric families of the admin server itself (STYLE 12), when a registry is given.
struct admin_http_server::counters {
    explicit counters(metrics_registry& r)
        : requests(r.counter("admin_http_requests_total", "Admin requests answered, by status.",
                             {"status"})),
          refused(r.counter("admin_http_connections_refused_total",
                            "Admin connections closed at once: max_connections were open.")),
          accept_errors(r.counter("admin_http_accept_errors_total",
                                  "Failed accepts on the admin listener (e.g. EMFILE); each "
                                  "one backs off.")) {}
    counter_family& requests;
    counter_family& refused;
    counter_family& accept_errors;
};

core::result<std::shared_ptr<admin_http_server>> admin_http_server::open(
    asio::any_io_executor executor, const tcp::endpoint& endpoint,
    std::vector<admin_endpoint> table, admin_server_options options) {
    tcp::acceptor acceptor(executor);
    error_code ec;
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
        return core::fail(core::errc::io_error,
                          fmt::format("cannot listen on {} for the {} listener: {}",
                                      endpoint_text(endpoint), options.log_name, ec.message()));
    return create(std::move(acceptor), std::move(table), std::move(options));
}

std::shared_ptr<admin_http_server> admin_http_server::create(tcp::acceptor acceptor,
                                                             std::vector<admin_endpoint> table,
                                                             admin_server_options options) {
    return std::make_shared<admin_http_server>(private_tag{}, std::move(acceptor), std::move(table),
                                               std::move(options));
}

admin_http_server::admin_http_server(private_tag, tcp::acceptor acceptor,
                                     std::vector<admin_endpoint> table,
                                     admin_server_options options)
    : acceptor_(std::move(acceptor)),
      backoff_(acceptor_.get_executor()),
      router_(std::move(table), options.access, options.title),
      options_(std::move(options)) {
    if (options_.registry) counters_ = std::make_unique<counters>(*options_.registry);
    error_code ec;
    auto ep = acceptor_.local_endpoint(ec);
    port_ = ec ? 0 : ep.port();
    options_.max_connections = std::max<std::size_t>(1, options_.max_connections);
}

admin_http_server::~admin_http_server() {
    error_code ignored;
    acceptor_.close(ignored);
}

void admin_http_server::start() {
    core::spawn(
        acceptor_.get_executor(), [self = shared_from_this()] { return self->accept_loop(); },
        options_.log_name + " accept loop");
}

void admin_http_server::close() {
    asio::dispatch(acceptor_.get_executor(), [self = shared_from_this()] { self->close_now(); });
}

void admin_http_server::close_now() {
    if (closed_) return;
    closed_ = true;
    error_code ignored;
    acceptor_.close(ignored);
    backoff_.cancel();
    for (const auto& conn : connections_) {
        conn->deadline.cancel();
        conn->socket.close(ignored);
        if (conn->events) conn->events->close();
        if (conn->cancel_later) conn->cancel_later();
    }
    connections_.clear();
}

asio::awaitable<void> admin_http_server::accept_loop() {
    auto self = shared_from_this();
    auto delay = first_backoff;
    bool warned = false;
    while (!closed_) {
        error_code ec;
        tcp::socket socket =
            co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
        if (closed_ || !acceptor_.is_open()) co_return;
        if (ec) {
            if (ec == asio::error::operation_aborted) co_return;
            if (counters_) counters_->accept_errors.with({}).inc();
            // EMFILE and friends leave the connection in the backlog: accepting
            // again at once would spin. Wait, longer each time, warn once.
            if (!warned)
                spdlog::warn("{} listener: accept failed: {}; backing off up to {} ms",
                             options_.log_name, ec.message(), options_.accept_backoff_max.count());
            warned = true;
            backoff_.expires_after(delay);
            error_code waited;
            co_await backoff_.async_wait(asio::redirect_error(asio::use_awaitable, waited));
            delay = std::min(delay * 2, std::max(first_backoff, options_.accept_backoff_max));
            continue;
        }
        if (warned) spdlog::info("{} listener: accepting again", options_.log_name);
        warned = false;
        delay = first_backoff;
        if (connections_.size() >= options_.max_connections) {
            if (counters_) counters_->refused.with({}).inc();
            spdlog::debug("{} listener: {} connections open, closing a new one", options_.log_name,
                          connections_.size());
            socket.close(ec);
            continue;
        }
        auto conn = std::make_shared<connection>(std::move(socket));
        conn->self = conn;
        if (auto peer = conn->socket.remote_endpoint(ec); !ec) conn->peer = endpoint_text(peer);
        connections_.insert(conn);
        core::spawn(
            acceptor_.get_executor(), [self, conn] { return self->serve(conn); },
            options_.log_name + " connection");
    }
}

asio::awaitable<void> admin_http_server::serve(std::shared_ptr<connection> conn) {
    auto self = shared_from_this();
    struct forget {
        admin_http_server& server;
        std::shared_ptr<connection> conn;
        ~forget() {
            conn->deadline.cancel();
            server.connections_.erase(conn);
        }
    } guard{*this, conn};

    // One deadline for reading the request and writing the answer.
    conn->arm(options_.read_timeout);

    beast::flat_buffer buffer(options_.max_header_bytes + options_.max_body_bytes + 1);
    http::request_parser<http::string_body> parser;
    parser.header_limit(
        static_cast<std::uint32_t>(std::min<std::size_t>(options_.max_header_bytes, UINT32_MAX)));
    parser.body_limit(options_.max_body_bytes);
    error_code ec;
    co_await http::async_read(conn->socket, buffer, parser,
                              asio::redirect_error(asio::use_awaitable, ec));
    admin_response response;
    bool head_only = false;
    if (ec) {
        auto failure = read_failure(ec, options_);
        if (!failure) co_return;  // closed, timed out or shut down
        response = std::move(*failure);
    } else {
        const auto& msg = parser.get();
        admin_request request;
        request.method = std::string(msg.method_string());
        request.target = std::string(msg.target());
        const auto q = request.target.find('?');
        request.path = request.target.substr(0, q);
        if (q != std::string::npos) request.query = request.target.substr(q + 1);
        request.body = msg.body();
        request.peer = conn->peer;
        admin_credentials credentials;
        credentials.http10 = msg.version() == 10;
        if (auto h = msg.find(http::field::host); h != msg.end())
            credentials.host = std::string(h->value());
        if (auto a = msg.find(http::field::authorization); a != msg.end())
            credentials.authorization = std::string(a->value());
        if (auto f = msg.find("Sec-Fetch-Site"); f != msg.end())
            credentials.fetch_site = std::string(f->value());
        head_only = request.method == "HEAD";
        if (msg.count(http::field::host) > 1 || msg.count(http::field::authorization) > 1) {
            response = admin_response::error(400, "bad_request",
                                             "more than one Host or Authorization header");
        } else {
            bool mutated = false;
            try {
                response = router_.route(request, credentials, &mutated);
            } catch (const std::exception& e) {
                spdlog::error("{}: {} failed: {}", options_.log_name, request.path, e.what());
                response =
                    admin_response::error(500, "internal", "the handler failed; see the log");
            }
            if (mutated && options_.on_mutation) options_.on_mutation(request, response);
        }
        spdlog::debug("{}: {} {} {:?} -> {}", options_.log_name, conn->peer, request.method,
                      request.path.substr(0, 200), response.status);
    }
    if (response.later) {
        // The wait has a deadline of its own, the answer's write a fresh one.
        conn->deadline.cancel();
        auto waiting =
            await_later(std::move(response.later), options_.read_timeout, conn->cancel_later);
        response = co_await std::move(waiting);
        if (!closed_) conn->arm(options_.read_timeout);
    }
    if (counters_) counters_->requests.with({std::to_string(response.status)}).inc();
    if (response.events && !head_only && !closed_) {
        auto streaming = stream(conn, std::move(response));
        co_await std::move(streaming);
        co_return;
    }
    const std::string text = serialize(response, head_only);
    co_await asio::async_write(conn->socket, asio::buffer(text),
                               asio::redirect_error(asio::use_awaitable, ec));
    conn->socket.shutdown(tcp::socket::shutdown_both, ec);
}

asio::awaitable<void> admin_http_server::stream(std::shared_ptr<connection> conn,
                                                admin_response response) {
    auto self = shared_from_this();
    auto events = std::move(response.events);
    conn->events = events;
    error_code ec;
    const std::string head = serialize_stream_head(response);
    co_await asio::async_write(conn->socket, asio::buffer(head),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    // A reader that goes away ends the subscription at once (it sends
    // nothing more after its request).
    auto probe = std::make_shared<std::array<char, 64>>();
    conn->socket.async_read_some(
        asio::buffer(*probe),
        [conn, probe, weak = std::weak_ptr<event_subscriber>(events)](error_code, std::size_t) {
            if (auto e = weak.lock()) e->close();
        });
    for (;;) {
        conn->deadline.cancel();  // no deadline while waiting for events
        auto text = co_await events->next(options_.event_keepalive);
        if (!text) break;
        if (text->empty()) continue;
        conn->arm(options_.read_timeout);  // a reader that stops reading is cut off
        co_await asio::async_write(conn->socket, asio::buffer(*text),
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
    }
    if (events->dropped())
        spdlog::warn("{}: event stream to {} dropped: the reader fell too far behind",
                     options_.log_name, conn->peer);
    events->close();
    conn->socket.shutdown(tcp::socket::shutdown_both, ec);
    conn->socket.close(ec);
}

}  // namespace tunnel::observe
