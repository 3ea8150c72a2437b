// bench/relay_load's tunnels: N `tunnel connect` clients in this one process
// (libtunnel's relay client, forward::supervisor over a WebSocket, exactly
// what `tunnel connect` runs), each publishing one name ("n0", "n1", ...)
// that leads to the load origin on its own loopback address
// (tunnel_address(i)). They run on one io_context on their own thread and
// attach at most `concurrency` at a time, so a relay is not handed 10,000
// handshakes at once.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "transport/websocket_client.hpp"

namespace tunnel::forward {
class supervisor;
}

namespace tunnel::bench {

struct fleet_options {
    transport::ws_url url;  // the relay's attach URL
    std::string token;      // a tenant token allowing "n*"
    int tunnels = 1;
    std::uint16_t origin_port = 0;
    std::string known_hosts_file;  // where the relay's host key is recorded on first use
    int concurrency = 64;          // attaches in flight at once
    std::chrono::seconds keepalive{15};
};

class tunnel_fleet {
  public:
    explicit tunnel_fleet(fleet_options o);
    ~tunnel_fleet();
    tunnel_fleet(const tunnel_fleet&) = delete;
    tunnel_fleet& operator=(const tunnel_fleet&) = delete;

    // Starts every client and waits until each has its name published;
    // an error (saying how many made it, and the first refusal) when
    // `timeout` passes first.
    [[nodiscard]] core::result<void> attach(std::chrono::milliseconds timeout);
    // Names published at least once.
    [[nodiscard]] int published() const noexcept { return published_once_.load(); }
    // Times any name was published again after its first time (reconnects).
    [[nodiscard]] int republished() const noexcept { return republished_.load(); }
    // Stops every client and the thread.
    void stop();

  private:
    struct member;
    void launch(int i);  // on the io thread
    void launch_next();  // on the io thread

    fleet_options options_;
    asio::io_context io_{1};
    std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>> work_;
    std::thread thread_;
    std::vector<std::shared_ptr<member>> members_;
    int next_ = 0;       // io thread only
    int in_flight_ = 0;  // io thread only
    std::atomic<int> published_once_{0};
    std::atomic<int> republished_{0};
    std::atomic<int> refused_{0};
    std::string first_refusal_;  // io thread only until attach() reads it after a timeout
    bool stopped_ = false;
};

}  // namespace tunnel::bench
