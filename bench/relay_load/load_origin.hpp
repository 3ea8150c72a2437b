// bench/relay_load's origin: a small keep-alive HTTP/1.1 server on its own
// thread, listening on the wildcard address of one port so that each tunnel
// can be sent to its own loopback address (127.a.b.c): the address a
// connection arrived on says which tunnel carried it, and the answer names it
// ("tunnel 127.a.b.c"), so the load driver can check that every request came
// back through the tunnel it was meant for. Connections from anything but
// loopback are closed unread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "core/asio.hpp"
#include "core/error.hpp"

namespace tunnel::bench {

class load_origin {
  public:
    [[nodiscard]] static core::result<std::unique_ptr<load_origin>> start();
    ~load_origin();
    load_origin(const load_origin&) = delete;
    load_origin& operator=(const load_origin&) = delete;

    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
    [[nodiscard]] long long requests() const noexcept { return requests_.load(); }
    [[nodiscard]] int open_connections() const noexcept { return open_.load(); }

  private:
    load_origin() = default;
    asio::awaitable<void> accept_loop();
    asio::awaitable<void> serve(asio::ip::tcp::socket s);

    asio::io_context io_{1};
    std::unique_ptr<asio::ip::tcp::acceptor> acceptor_;
    std::thread thread_;
    std::uint16_t port_ = 0;
    std::atomic<long long> requests_{0};
    std::atomic<int> open_{0};
};

// The loopback address tunnel `i` is sent to: 127.0.0.2 + i (0 <= i < 2^24 - 3).
[[nodiscard]] std::string tunnel_address(int i);

}  // namespace tunnel::bench
