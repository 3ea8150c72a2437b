// ProxyJump: carries an inner SSH session over a `direct-tcpip` channel of an
// outer one. The inner libssh session gets one end of a socketpair; this
// bridge pumps bytes between the other end and the channel.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "ssh/byte_stream.hpp"
#include "ssh/channel.hpp"

namespace tunnel::ssh {

class jump_bridge : public stream_pump, public std::enable_shared_from_this<jump_bridge> {
  public:
    // Opens the channel to host:port through `jump`; returns the bridge and the
    // fd to hand to the inner session (owned by the caller).
    static asio::awaitable<core::result<std::pair<std::shared_ptr<jump_bridge>, int>>> open(
        std::shared_ptr<session> jump, std::string host, uint16_t port, time_point deadline);

    void stop() override;

    jump_bridge(channel ch, asio::local::stream_protocol::socket socket);

  private:
    asio::awaitable<void> channel_to_socket();
    asio::awaitable<void> socket_to_channel();

    channel channel_;
    asio::local::stream_protocol::socket socket_;
    bool stopped_ = false;
};

}  // namespace tunnel::ssh
