// ProxyJump: carries an inner SSH session over a `direct-tcpip` channel of an
// outer one. The inner libssh session gets one end of a socketpair; a channel
// pump (ssh/channel_pump.hpp, the loop every forward uses) moves bytes between
// the other end and the channel.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "ssh/byte_stream.hpp"
#include "ssh/channel_pump.hpp"

namespace tunnel::ssh {

class jump_bridge : public stream_pump {
  public:
    // Opens the channel to host:port through `jump`; returns the bridge and the
    // fd to hand to the inner session (owned by the caller).
    static asio::awaitable<core::result<std::pair<std::shared_ptr<jump_bridge>, int>>> open(
        std::shared_ptr<session> jump, std::string host, uint16_t port, time_point deadline);

    // Ends the pump: closes its socket end and the channel.
    void stop() override;

    explicit jump_bridge(std::weak_ptr<pump_control> pump) : pump_(std::move(pump)) {}

  private:
    std::weak_ptr<pump_control> pump_;  // the pump owns itself; expired once it ended
};

}  // namespace tunnel::ssh
