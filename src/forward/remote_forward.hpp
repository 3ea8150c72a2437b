// -R: asks the server to listen (tcpip-forward) and carries each
// forwarded-tcpip channel it opens to a local TCP or Unix target. Requested
// again on every new session; a port the server allocated (-R 0:...) is
// asked for again by number after a reconnect, so it stays stable when it can.
#pragma once

#include <chrono>
#include <memory>

#include "forward/forward_stats.hpp"
#include "ssh/channel.hpp"

namespace tunnel::forward {

class remote_forward {
  public:
    explicit remote_forward(std::shared_ptr<forward_stats> stats) : stats_(std::move(stats)) {}

    // Sends tcpip-forward and waits for the answer. On success bound_port()
    // is the port the server listens on.
    asio::awaitable<core::result<uint16_t>> request(std::shared_ptr<ssh::session> session,
                                                    ssh::time_point deadline);

    // Whether a forwarded channel that arrived on `port` belongs here.
    [[nodiscard]] bool owns(int port) const noexcept;

    // Connects to the local target and starts pumping (returns at once).
    void carry(ssh::channel channel, std::chrono::milliseconds connect_timeout);

    [[nodiscard]] forward_stats& stats() noexcept { return *stats_; }

  private:
    std::shared_ptr<forward_stats> stats_;
};

}  // namespace tunnel::forward
