// Debian's `websockify` (a real WebSocket server) in front of a TCP target,
// on 127.0.0.1 and a port chosen at runtime: the stand-in relay for the
// WebSocket client's tests and the `websockify + ssh` peer of bench/relay.
//
//   auto ws = websockify_fixture::start({.target_port = sshd->port()});
//   ASSERT_TRUE(ws) << ws.error().message;
//   ... ws://127.0.0.1:<ws->port()>/ ...
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "support/process.hpp"

namespace tunnel::test {

struct websockify_options {
    uint16_t target_port = 0;
    // wss: a self-signed certificate for 127.0.0.1 (SAN IP:127.0.0.1) is made
    // in the fixture's directory; cert_path() is what a client must trust.
    bool tls = false;
    // Extra websockify arguments (e.g. --auth-plugin ...).
    std::vector<std::string> extra_args;
    std::chrono::milliseconds start_timeout{15'000};
};

class websockify_fixture {
  public:
    [[nodiscard]] static core::result<websockify_fixture> start(websockify_options options);

    websockify_fixture(websockify_fixture&&) noexcept = default;
    websockify_fixture& operator=(websockify_fixture&&) noexcept = default;
    ~websockify_fixture();

    [[nodiscard]] uint16_t port() const noexcept { return port_; }
    // ws://127.0.0.1:PORT/ or wss://...
    [[nodiscard]] std::string url() const;
    [[nodiscard]] std::string cert_path() const { return dir_.file("cert.pem"); }
    [[nodiscard]] std::string log() const;
    // SIGSTOP / SIGCONT to websockify and its per-connection children.
    void pause() const;
    void resume() const;

  private:
    websockify_fixture(temp_dir dir, child_process process, uint16_t port, bool tls)
        : dir_(std::move(dir)), process_(std::move(process)), port_(port), tls_(tls) {}
    temp_dir dir_;
    std::optional<child_process> process_;
    uint16_t port_ = 0;
    bool tls_ = false;
};

}  // namespace tunnel::test
