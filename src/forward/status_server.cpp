#include "forward/status_server.hpp"

#include <charconv>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace tunnel::forward {

namespace {

constexpr std::size_t max_request = 8192;
constexpr int max_connections = 32;

const char* reason(int status) {
    switch (status) {
        case 200:
            return "OK";
        case 400:
            return "Bad Request";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 503:
            return "Service Unavailable";
        default:
            return "Error";
    }
}

}  // namespace

std::vector<status_endpoint> forward_status_endpoints(std::function<supervisor_stats()> snapshot) {
    std::vector<status_endpoint> t;
    t.push_back({"/healthz", "200 when the session and every forward are up, else 503", [snapshot] {
                     auto s = snapshot();
                     bool ok = s.healthy();
                     return http_response{ok ? 200 : 503, "text/plain; charset=utf-8",
                                          ok ? "ok\n" : "unhealthy\n"};
                 }});
    t.push_back({"/metrics",
                 "Prometheus text: bytes, channels, connects, reconnects, state per forward",
                 [snapshot] {
                     return http_response{200, "text/plain; version=0.0.4; charset=utf-8",
                                          render_metrics(snapshot())};
                 }});
    t.push_back(
        {"/status", "JSON: session and per-forward state and counters", [snapshot] {
             return http_response{200, "application/json", render_status_json(snapshot()) + "\n"};
         }});
    return t;
}

http_response route_request(const std::vector<status_endpoint>& table, std::string_view request) {
    auto eol = request.find("\r\n");
    std::string_view line = request.substr(0, eol);
    auto sp1 = line.find(' ');
    auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp1 == std::string_view::npos || sp2 == std::string_view::npos ||
        line.substr(sp2 + 1).rfind("HTTP/1.", 0) != 0)
        return {400, "text/plain; charset=utf-8", "bad request\n"};
    auto method = line.substr(0, sp1);
    auto target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    auto path = target.substr(0, target.find('?'));
    if (path == "/help" || path == "/") {
        std::string body;
        for (const auto& e : table) body += fmt::format("{:<10} {}\n", e.path, e.help);
        body += fmt::format("{:<10} {}\n", "/help", "this list");
        if (method != "GET" && method != "HEAD")
            return {405, "text/plain; charset=utf-8", "use GET\n"};
        return {200, "text/plain; charset=utf-8", body};
    }
    for (const auto& e : table) {
        if (e.path != path) continue;
        if (method != "GET" && method != "HEAD")
            return {405, "text/plain; charset=utf-8", "use GET\n"};
        return e.handler();
    }
    return {404, "text/plain; charset=utf-8", "not found; see /help\n"};
}

std::string serialize(const http_response& r) {
    return fmt::format(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n"
        "Connection: close\r\n\r\n{}",
        r.status, reason(r.status), r.content_type, r.body.size(), r.body);
}

core::result<std::shared_ptr<status_server>> status_server::open(
    asio::any_io_executor executor, std::string_view address, std::vector<status_endpoint> table) {
    auto bad = [&](std::string why) {
        return core::fail(
            core::errc::invalid_argument,
            fmt::format("--status-addr \"{}\": {}; expected HOST:PORT, e.g. 127.0.0.1:9100",
                        address, why));
    };
    auto colon = address.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return bad("missing port");
    std::string host(address.substr(0, colon));
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    auto port_text = address.substr(colon + 1);
    unsigned port = 0;
    auto [end, ec1] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (port_text.empty() || ec1 != std::errc{} || end != port_text.data() + port_text.size() ||
        port > 65535)
        return bad("bad port");
    boost::system::error_code ec;
    auto ip = asio::ip::make_address(host, ec);
    if (ec) return bad("the host must be an IP address");
    asio::ip::tcp::endpoint ep(ip, static_cast<uint16_t>(port));
    asio::ip::tcp::acceptor acceptor(executor);
    acceptor.open(ep.protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(ep, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
        return core::fail(
            core::errc::io_error,
            fmt::format("cannot listen on {} for --status-addr: {}", address, ec.message()));
    return std::make_shared<status_server>(std::move(acceptor), std::move(table));
}

status_server::status_server(asio::ip::tcp::acceptor acceptor, std::vector<status_endpoint> table)
    : acceptor_(std::move(acceptor)), table_(std::move(table)) {}

void status_server::start() {
    asio::co_spawn(
        acceptor_.get_executor(), [self = shared_from_this()] { return self->accept_loop(); },
        asio::detached);
}

void status_server::stop() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
}

uint16_t status_server::port() const {
    boost::system::error_code ec;
    auto ep = acceptor_.local_endpoint(ec);
    return ec ? 0 : ep.port();
}

asio::awaitable<void> status_server::accept_loop() {
    auto self = shared_from_this();
    for (;;) {
        boost::system::error_code ec;
        auto socket =
            co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            if (!acceptor_.is_open()) co_return;
            continue;
        }
        if (active_ >= max_connections) continue;  // closes it
        asio::co_spawn(
            acceptor_.get_executor(),
            [self, s = std::move(socket)]() mutable { return self->serve(std::move(s)); },
            asio::detached);
    }
}

asio::awaitable<void> status_server::serve(asio::ip::tcp::socket socket) {
    auto self = shared_from_this();
    ++active_;
    struct leave {
        int& n;
        ~leave() { --n; }
    } guard{active_};
    asio::steady_timer deadline(socket.get_executor(), std::chrono::seconds(5));
    deadline.async_wait([&socket](boost::system::error_code ec) {
        if (!ec) {
            boost::system::error_code ignored;
            socket.close(ignored);
        }
    });
    std::string request;
    std::array<char, 2048> buf;
    while (request.find("\r\n\r\n") == std::string::npos) {
        boost::system::error_code ec;
        auto n = co_await socket.async_read_some(asio::buffer(buf),
                                                 asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return;
        request.append(buf.data(), n);
        if (request.size() > max_request) {
            request.clear();
            break;
        }
    }
    auto response = request.empty()
                        ? http_response{400, "text/plain; charset=utf-8", "request too large\n"}
                        : route_request(table_, request);
    auto text = serialize(response);
    if (request.rfind("HEAD ", 0) == 0) text.resize(text.find("\r\n\r\n") + 4);
    boost::system::error_code ec;
    co_await asio::async_write(socket, asio::buffer(text),
                               asio::redirect_error(asio::use_awaitable, ec));
    deadline.cancel();
    socket.shutdown(asio::socket_base::shutdown_both, ec);
}

}  // namespace tunnel::forward
