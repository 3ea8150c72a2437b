// A userspace TCP proxy on 127.0.0.1 that delays every byte by a fixed time
// in each direction (this kernel has no netem): `delay_proxy p(target, 5ms)`
// gives a 10 ms round trip. Each connection gets two pump threads; a pump
// reads as soon as data arrives and writes it out when its time has come, so
// it adds latency, not a bandwidth limit (up to a 64 MiB backlog).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

namespace tunnel::bench {

class delay_proxy {
  public:
    delay_proxy(std::uint16_t target_port, std::chrono::microseconds one_way_delay);
    ~delay_proxy();
    delay_proxy(const delay_proxy&) = delete;
    delay_proxy& operator=(const delay_proxy&) = delete;

    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }

  private:
    void accept_loop();

    std::uint16_t target_port_;
    std::chrono::microseconds delay_;
    int listen_fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::thread acceptor_;
    std::vector<std::thread> pumps_;
};

}  // namespace tunnel::bench
