// The relay server (ARCHITECTURE §5): one public listener (TLS, or plain
// HTTP where the config allows it) that takes both tunnel attaches
// (`GET /v1/tunnel` + Bearer JWT, upgraded to a WebSocket carrying SSH) and
// public HTTP requests, which it routes by Host or /t/<tenant>/<name>/ to a
// forwarded-tcpip channel of the tunnel that published the name; plus a
// loopback admin listener (admin_server).
//
// Threads (docs/relay.md "Threading model"): `workers` worker threads, one
// io_context each. Worker 0 is the io_context given to create(), run by the
// caller; start() starts workers 1..N-1 on io_contexts of the relay's own.
// Each tunnel (WebSocket, SSH session, channels) is pinned to one worker, and
// a public request is served on its tunnel's worker (the connection is handed
// over after its head is routed).
//
// Stopping: shutdown() (graceful) or close() (at once) close everything the
// relay owns (listeners, public connections, tunnels, timers: relay_state's
// `owned` registry, each on its worker), so every coroutine the relay
// started completes and every worker's run() returns by itself. Then destroy
// the relay_server (it joins workers 1..N-1), then the io_context:
//
//   asio::io_context io;
//   std::unique_ptr<relay_server> relay = ...;   // relay_server::create(io, config)
//   relay->start();
//   ... relay->shutdown([] { /* drained and closed */ });
//   io.run();          // returns once the last connection is closed
//   relay = nullptr;   // before io goes away
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "relay/config_reload.hpp"
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
    // deadline (shutdown.drain_timeout), disconnect every tunnel ("relay
    // shutting down", WebSocket close 1001) and give that up to a second to
    // reach the clients, then close() and call `done` (on the io_context's
    // thread). Safe to call from any thread; a second call only adds `done`.
    void shutdown(std::function<void()> done);

    // Closes everything at once: listeners, public connections (in-flight
    // requests are cut), tunnels (SSH disconnect "relay closed"), timers; a
    // shutdown in progress finishes at once. Call it on the io_context's
    // thread, or while the io_context is not running. Idempotent; the
    // destructor calls it.
    void close();

    // SIGHUP (config_reload.hpp): applies `next` (parsed like the start's
    // config, or the error that parse gave) over `running` (the config as
    // last loaded); logs and audits the outcome ("config_reload"). On the
    // io_context's thread. Returns the changes applied, or why not.
    [[nodiscard]] core::result<std::vector<config_change>> reload(
        const relay_config& running, const core::result<relay_config>& next);

    [[nodiscard]] std::uint16_t public_port() const;
    [[nodiscard]] std::uint16_t admin_port() const;
    [[nodiscard]] const std::string& host_key_fingerprint() const;
    [[nodiscard]] const std::string& jwt_key_fingerprint() const;
    [[nodiscard]] bool tls() const;

    struct shutdown_state;  // shutdown()'s callbacks, shared with its coroutine

    // Worker threads (workers: in the config, resolved), worker 0 included.
    [[nodiscard]] unsigned workers() const;

  private:
    relay_server(std::shared_ptr<relay_state> state,
                 std::vector<std::unique_ptr<asio::io_context>> contexts);
    // Joins workers 1..N-1 (waiting up to `grace` for their run() to return
    // by itself, then stopping them).
    void join_workers(std::chrono::milliseconds grace);
    std::shared_ptr<relay_state> state_;
    std::shared_ptr<shutdown_state> shutdown_;
    std::vector<std::unique_ptr<asio::io_context>> contexts_;  // workers 1..N-1
    std::vector<std::thread> threads_;
};

}  // namespace tunnel::relay
