#include "ssh/jump_bridge.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/spawn.hpp"

namespace tunnel::ssh {

namespace {
constexpr auto forever = time_point::max();
}

jump_bridge::jump_bridge(channel ch, asio::local::stream_protocol::socket socket)
    : channel_(std::move(ch)), socket_(std::move(socket)) {}

asio::awaitable<core::result<std::pair<std::shared_ptr<jump_bridge>, int>>> jump_bridge::open(
    std::shared_ptr<session> jump, std::string host, uint16_t port, time_point deadline) {
    auto ch = co_await channel::open_direct_tcpip(jump, host, port, deadline);
    if (!ch) co_return tl::unexpected(ch.error());

    auto fds = open_socketpair();
    if (!fds) co_return tl::unexpected(fds.error());
    asio::local::stream_protocol::socket ours(jump->executor());
    ours.assign(asio::local::stream_protocol(), fds->first);
    auto bridge = std::make_shared<jump_bridge>(std::move(*ch), std::move(ours));
    core::spawn(
        jump->executor(), [b = bridge]() { return b->channel_to_socket(); },
        "jump bridge channel->socket");
    core::spawn(
        jump->executor(), [b = bridge]() { return b->socket_to_channel(); },
        "jump bridge socket->channel");
    co_return std::pair{bridge, fds->second};
}

void jump_bridge::stop() {
    if (stopped_) return;
    stopped_ = true;
    boost::system::error_code ignored;
    socket_.close(ignored);
    channel_.close();
    channel_.wake();  // the pumps' waits on the channel see the stop
}

asio::awaitable<void> jump_bridge::channel_to_socket() {
    auto self = shared_from_this();
    auto& st = channel_.state();
    std::string chunk;
    while (!stopped_) {
        channel_.drain();
        if (!st.out.empty()) {
            // Take the buffer: libssh's packet loop, run by any call on the
            // jump session (this bridge's own channel writes included), keeps
            // appending to st.out while the write is in flight.
            chunk.clear();
            chunk.swap(st.out);
            boost::system::error_code ec;
            co_await asio::async_write(socket_, asio::buffer(chunk),
                                       asio::redirect_error(asio::use_awaitable, ec));
            if (ec) break;
            continue;
        }
        if (st.eof) break;
        if (auto w = co_await channel_.wait_readable(forever); !w) {
            spdlog::debug("jump host {}: {}", channel_.owner().options().destination(),
                          w.error().message);
            break;
        }
    }
    boost::system::error_code ignored;
    socket_.shutdown(asio::socket_base::shutdown_send, ignored);
}

asio::awaitable<void> jump_bridge::socket_to_channel() {
    auto self = shared_from_this();
    std::array<char, 64 * 1024> buf;
    while (!stopped_) {
        boost::system::error_code ec;
        std::size_t n = co_await socket_.async_read_some(
            asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
        std::string_view pending(buf.data(), n);
        while (!pending.empty() && !stopped_) {
            auto w = channel_.write_some(pending);
            if (!w) {
                stop();
                co_return;
            }
            pending.remove_prefix(*w);
            // Wait only while the window stays shut: write_some's flush may have
            // processed the peer's window adjust already (no callback for it).
            if (!pending.empty() && (*w == 0 || channel_.window() == 0)) {
                if (auto r = co_await channel_.wait_writable(forever); !r) {
                    stop();
                    co_return;
                }
            }
        }
    }
    channel_.send_eof();
}

}  // namespace tunnel::ssh
