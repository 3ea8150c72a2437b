// The relay server (ARCHITECTURE §5): one public listener (TLS, or plain
// HTTP where the config allows it) that takes both tunnel attaches
// (`GET /v1/tunnel` + Bearer JWT, upgraded to a WebSocket carrying SSH) and
// public HTTP requests, which it routes by Host or /t/<tenant>/<name>/ to a
// forwarded-tcpip channel of the tunnel that published the name; plus a
// loopback admin listener (admin_server).
//
// Everything runs on the io_context given to create(), from one thread:
// each tunnel's SSH session, its WebSocket and the public connections routed
// to it share that thread, so no object is touched from two threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "relay/relay_config.hpp"

namespace tunnel::relay {

class relay_state;

class relay_server {
  public:
    // Loads keys (JWT, host key, TLS) and binds both listeners; nothing is
    // accepted until start().
    [[nodiscard]] static core::result<std::unique_ptr<relay_server>> create(asio::io_context& io,
                                                                            relay_config config);

    relay_server(const relay_server&) = delete;
    relay_server& operator=(const relay_server&) = delete;
    ~relay_server();

    void start();

    // Graceful shutdown: stop accepting, answer new requests on open
    // connections with 503, wait for in-flight requests up to the drain
    // deadline, then disconnect every tunnel ("relay shutting down") and call
    // `done`.
    void shutdown(std::function<void()> done);

    [[nodiscard]] std::uint16_t public_port() const;
    [[nodiscard]] std::uint16_t admin_port() const;
    [[nodiscard]] const std::string& host_key_fingerprint() const;
    [[nodiscard]] const std::string& jwt_key_fingerprint() const;
    [[nodiscard]] bool tls() const;

  private:
    explicit relay_server(std::shared_ptr<relay_state> state);
    std::shared_ptr<relay_state> state_;
};

}  // namespace tunnel::relay
