// -L and -D: listens on this machine and carries each accepted connection
// through a direct-tcpip (or direct-streamlocal) channel. -D first runs the
// SOCKS handshake to learn the destination. Listeners stay open while the
// session is down; a connection made then waits up to `outage_wait` for the
// session to come back and is closed cleanly after that.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <vector>

#include "forward/forward_stats.hpp"
#include "forward/local_socket.hpp"
#include "forward/session_source.hpp"
#include "forward/socks.hpp"

namespace tunnel::forward {

struct local_forward_options {
    std::chrono::milliseconds outage_wait{10'000};
    std::chrono::milliseconds open_timeout{15'000};
    std::chrono::milliseconds handshake_timeout{10'000};  // SOCKS
    std::optional<socks_credentials> socks_auth;
    std::size_t max_connections = 1024;
};

class local_forward : public std::enable_shared_from_this<local_forward> {
  public:
    // Binds the listeners now, so a port in use is reported before connecting.
    [[nodiscard]] static core::result<std::shared_ptr<local_forward>> open(
        asio::any_io_executor executor, std::shared_ptr<forward_stats> stats,
        session_source& source, local_forward_options options);
    void start();
    void stop();
    [[nodiscard]] uint16_t port() const { return listening_port(listeners_); }

    local_forward(asio::any_io_executor executor, std::shared_ptr<forward_stats> stats,
                  session_source& source, local_forward_options options,
                  std::vector<stream_acceptor> listeners);

  private:
    asio::awaitable<void> accept_loop(stream_acceptor& listener);
    asio::awaitable<void> serve(stream_socket socket);
    asio::awaitable<std::optional<socks_target>> socks(stream_socket& socket, socks_handshake& hs,
                                                       std::string& early);

    asio::any_io_executor executor_;
    std::shared_ptr<forward_stats> stats_;
    session_source& source_;
    local_forward_options options_;
    std::vector<stream_acceptor> listeners_;
    std::size_t active_ = 0;
    bool stopped_ = false;
};

}  // namespace tunnel::forward
