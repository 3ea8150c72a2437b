#include "link/manager_call.hpp"

#include "link/control_request.hpp"

namespace tunnel::link {

asio::awaitable<std::optional<manager_reply>> call_manager(const std::string& socket_path,
                                                           const nlohmann::json& request,
                                                           std::chrono::milliseconds timeout) {
    using local = asio::local::stream_protocol;
    auto ex = co_await asio::this_coro::executor;
    auto socket = std::make_shared<local::socket>(ex);
    boost::system::error_code ec;
    socket->connect(local::endpoint(socket_path), ec);  // a Unix socket: answers at once
    if (ec) co_return std::nullopt;                     // no manager
    auto line = request.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    if (line.size() > max_request_bytes) co_return std::nullopt;  // too long for a control line
    co_await asio::async_write(*socket, asio::buffer(line),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return std::nullopt;

    std::string buffer;
    asio::steady_timer timer(ex, timeout);
    bool timer_fired = false;
    timer.async_wait([socket, &timer_fired](boost::system::error_code e) {
        if (e) return;
        timer_fired = true;
        boost::system::error_code ignored;
        socket->close(ignored);
    });
    const auto n =
        co_await asio::async_read_until(*socket, asio::dynamic_buffer(buffer, 64 * 1024), '\n',
                                        asio::redirect_error(asio::use_awaitable, ec));
    timer.cancel();
    if (ec || timer_fired) co_return std::nullopt;  // the manager went away (or hung)
    auto reply = nlohmann::json::parse(std::string_view(buffer).substr(0, n - 1), nullptr, false);
    if (!reply.is_object()) co_return std::nullopt;
    buffer.erase(0, n);
    co_return manager_reply{std::move(socket), std::move(reply), std::move(buffer)};
}

}  // namespace tunnel::link
