#include "load_origin.hpp"

#include <fmt/format.h>

#include "core/spawn.hpp"

namespace tunnel::bench {

using asio::ip::tcp;
using boost::system::error_code;

std::string tunnel_address(int i) {
    const auto v = static_cast<unsigned>(i) + 2u;
    return fmt::format("127.{}.{}.{}", (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff);
}

core::result<std::unique_ptr<load_origin>> load_origin::start() {
    std::unique_ptr<load_origin> o(new load_origin());
    error_code ec;
    o->acceptor_ = std::make_unique<tcp::acceptor>(o->io_);
    // The wildcard address: each tunnel targets its own 127.a.b.c (see above).
    const tcp::endpoint at(asio::ip::address_v4::any(), 0);
    o->acceptor_->open(at.protocol(), ec);
    if (!ec) o->acceptor_->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) o->acceptor_->bind(at, ec);
    if (!ec) o->acceptor_->listen(1024, ec);
    if (ec)
        return core::fail(core::errc::io_error,
                          fmt::format("load origin: cannot listen: {}", ec.message()));
    o->port_ = o->acceptor_->local_endpoint().port();
    core::spawn(o->io_, o->accept_loop(), "load origin accept loop");
    o->thread_ = std::thread([p = o.get()] { p->io_.run(); });
    return o;
}

load_origin::~load_origin() {
    asio::post(io_, [this] {
        error_code ec;
        acceptor_->close(ec);
        io_.stop();
    });
    if (thread_.joinable()) thread_.join();
}

asio::awaitable<void> load_origin::accept_loop() {
    for (;;) {
        error_code ec;
        auto s = co_await acceptor_->async_accept(asio::redirect_error(asio::use_awaitable, ec));
        if (ec == asio::error::operation_aborted || !acceptor_->is_open()) co_return;
        if (ec) {  // EMFILE and the like: wait a little instead of spinning
            asio::steady_timer t(io_, std::chrono::milliseconds(50));
            co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            continue;
        }
        const auto peer = s.remote_endpoint(ec);
        if (ec || !peer.address().is_loopback()) continue;  // closed unread
        core::spawn(io_, serve(std::move(s)), "load origin connection");
    }
}

asio::awaitable<void> load_origin::serve(tcp::socket s) {
    ++open_;
    error_code ec;
    s.set_option(tcp::no_delay(true), ec);
    const auto local = s.local_endpoint(ec);
    const std::string body =
        ec ? std::string("tunnel ?\n") : fmt::format("tunnel {}\n", local.address().to_string());
    const std::string reply =
        fmt::format("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{}",
                    body.size(), body);
    std::string buf;
    constexpr std::size_t max_head = 16 * 1024;
    char chunk[4096];
    while (!ec) {
        // One request head (the load driver sends GETs without a body).
        const auto end = buf.find("\r\n\r\n");
        if (end == std::string::npos) {
            if (buf.size() > max_head) break;
            const auto n = co_await s.async_read_some(
                asio::buffer(chunk), asio::redirect_error(asio::use_awaitable, ec));
            buf.append(chunk, ec ? 0 : n);
            continue;
        }
        buf.erase(0, end + 4);
        ++requests_;
        co_await asio::async_write(s, asio::buffer(reply),
                                   asio::redirect_error(asio::use_awaitable, ec));
    }
    --open_;
}

}  // namespace tunnel::bench
