// A real dropbear server for interop tests: a second SSH implementation whose
// flow control differs from OpenSSH's (a 24 KiB receive window that it gives
// back whole, adjusts sent only when our data arrives).
//
//   auto dropbear = tunnel::test::dropbear_fixture::start();
//   if (!dropbear) GTEST_SKIP() << dropbear.error().message;   // no dropbear here
//   run_tunnel({"exec", ...dropbear->client_flags("-p"), "root@127.0.0.1", "--", "true"});
//
// dropbear 2022.83 reads authorized_keys only from the user's home, so the
// fixture runs it in a private mount namespace where dir()/home is bind-mounted
// on /root: `unshare --mount -- sh -c 'mount --bind DIR/home /root && exec
// dropbear -F -E -s -p 127.0.0.1:PORT -r DIR/hostkey ...'`. The real /root is
// never touched. Sessions run as root with /root (that home) as their cwd;
// every other path is the machine's. stderr (dropbear -E) goes to log_path().
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "support/private_mount.hpp"
#include "support/process.hpp"

namespace tunnel::test {

struct dropbear_options {
    // dropbear -W: its receive window in bytes; 0 keeps its default (24576).
    std::size_t receive_window = 0;
    std::chrono::milliseconds start_timeout{10'000};
    int bind_attempts = 5;  // new port each time dropbear cannot bind
};

class dropbear_fixture {
  public:
    // errc::not_found when dropbear, dropbearkey, unshare, mount or
    // ssh-keygen is missing or a private mount namespace is not permitted
    // here (tests skip on it); another error when it should have worked.
    [[nodiscard]] static core::result<dropbear_fixture> start(dropbear_options options = {});

    dropbear_fixture(dropbear_fixture&& other) noexcept;
    dropbear_fixture& operator=(dropbear_fixture&& other) noexcept;
    dropbear_fixture(const dropbear_fixture&) = delete;
    dropbear_fixture& operator=(const dropbear_fixture&) = delete;
    // Same as stop().
    ~dropbear_fixture();

    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
    [[nodiscard]] const std::string& dir() const noexcept { return dir_.path(); }
    [[nodiscard]] std::string log_path() const { return dir_.file("dropbear.log"); }
    // The last few KiB of the log, for failure messages.
    [[nodiscard]] std::string log() const;

    // Private key (mode 0600) authorized for root.
    [[nodiscard]] std::string client_key_path() const { return dir_.file("client_ed25519"); }
    // Holds `[127.0.0.1]:PORT ssh-ed25519 AAAA...` for this server.
    [[nodiscard]] std::string known_hosts_path() const { return dir_.file("known_hosts"); }
    // `ssh-ed25519 AAAA...` (no comment).
    [[nodiscard]] const std::string& host_pubkey() const noexcept { return host_pubkey_; }

    // -F /dev/null PORT_OPTION PORT -i KEY -o UserKnownHostsFile=...
    // -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes
    // -o BatchMode=yes. PORT_OPTION: "-p" (exec, forward) or "-P" (cp).
    [[nodiscard]] std::vector<std::string> client_flags(std::string_view port_option = "-p") const;

    [[nodiscard]] bool running() const noexcept { return server_.has_value(); }
    // Kills the listener and every process in its mount namespace (its
    // sessions and their commands). SIGTERM, SIGKILL after 2 s. Idempotent.
    void stop();

  private:
    dropbear_fixture(temp_dir dir, dropbear_options options, std::string host_pubkey)
        : dir_(std::move(dir)), options_(options), host_pubkey_(std::move(host_pubkey)) {}

    // Starts dropbear on port_; errc::connection_failed when it could not bind.
    [[nodiscard]] core::result<void> launch();

    temp_dir dir_;
    dropbear_options options_;
    std::string host_pubkey_;
    std::uint16_t port_ = 0;
    std::optional<private_server> server_;  // the listener and its mount namespace
};

}  // namespace tunnel::test
