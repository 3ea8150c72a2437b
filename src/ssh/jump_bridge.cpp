#include "ssh/jump_bridge.hpp"

#include <unistd.h>

#include <fmt/format.h>

#include "ssh/channel.hpp"

namespace tunnel::ssh {

asio::awaitable<core::result<std::pair<std::shared_ptr<jump_bridge>, int>>> jump_bridge::open(
    std::shared_ptr<session> jump, std::string host, uint16_t port, time_point deadline) {
    auto ch = co_await channel::open_direct_tcpip(jump, host, port, deadline);
    if (!ch) co_return tl::unexpected(ch.error());

    auto fds = open_socketpair();
    if (!fds) co_return tl::unexpected(fds.error());
    stream_socket ours(jump->executor());
    boost::system::error_code ec;
    ours.assign(asio::generic::stream_protocol(asio::local::stream_protocol()), fds->first, ec);
    if (ec) {
        ::close(fds->first);
        ::close(fds->second);
        co_return core::fail(core::errc::io_error,
                             fmt::format("ProxyJump bridge: {}", ec.message()));
    }
    auto pump = start_channel_pump(std::move(*ch), std::move(ours), nullptr, {}, {}, "jump bridge");
    co_return std::pair{std::make_shared<jump_bridge>(std::move(pump)), fds->second};
}

void jump_bridge::stop() {
    if (auto p = pump_.lock()) p->stop();
}

}  // namespace tunnel::ssh
