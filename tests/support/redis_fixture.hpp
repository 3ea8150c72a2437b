// A real redis-server for tests (docs/cluster.md): 127.0.0.1 on a free port,
// no persistence (--save "" --appendonly no), its own directory, killed in the
// destructor. stop() and restart() keep the port, so clients configured with
// it reconnect to the same address. sentinel() starts `redis-server
// --sentinel` watching this server as master "mymaster".
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "support/process.hpp"

namespace tunnel::test {

class redis_fixture {
  public:
    struct options {
        std::string password;  // non-empty: requirepass
    };
    [[nodiscard]] static core::result<redis_fixture> start(options opts);
    [[nodiscard]] static core::result<redis_fixture> start() { return start(options{}); }

    redis_fixture(redis_fixture&&) noexcept = default;
    redis_fixture& operator=(redis_fixture&&) noexcept = default;
    ~redis_fixture();

    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
    // redis://[:password@]127.0.0.1:port
    [[nodiscard]] std::string url() const;

    // Kills the server (SIGKILL: no goodbye to clients); restart() brings a
    // fresh, empty one up on the same port.
    void stop();
    [[nodiscard]] core::result<void> restart();
    [[nodiscard]] bool running() const noexcept { return server_.has_value(); }

    // redis-cli against this server; returns its stdout (trimmed).
    [[nodiscard]] std::string cli(const std::vector<std::string>& args) const;

    // Starts a sentinel watching this server as "mymaster"; returns its port.
    [[nodiscard]] core::result<std::uint16_t> start_sentinel();

  private:
    redis_fixture(temp_dir dir, std::uint16_t port, std::string password)
        : dir_(std::move(dir)), port_(port), password_(std::move(password)) {}
    [[nodiscard]] core::result<void> launch();

    temp_dir dir_;
    std::uint16_t port_ = 0;
    std::string password_;
    std::optional<child_process> server_;
    std::vector<child_process> sentinels_;
};

// The `cluster:` section of a relay's YAML using `redis` (docs/cluster.md):
// node, internal_listen on 127.0.0.1:internal_port (0: a free port) and
// secret_file.
[[nodiscard]] std::string cluster_yaml(const redis_fixture& redis, const std::string& node,
                                       const std::string& secret_file,
                                       std::uint16_t internal_port = 0);

}  // namespace tunnel::test
