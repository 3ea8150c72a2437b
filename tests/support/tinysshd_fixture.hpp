// A real tinysshd for interop tests: a third SSH implementation, minimal by
// design (ed25519 keys and curve25519/sntrup761 + chacha20-poly1305 only, no
// port forwarding, no agent forwarding, subsystems only as given with -x).
//
//   auto tiny = tunnel::test::tinysshd_fixture::start();
//   if (!tiny) GTEST_SKIP() << tiny.error().message;   // no tinysshd here
//   run_tunnel({"exec", ...tiny->client_flags("-p"), "root@127.0.0.1", "--", "true"});
//
// tinysshd serves one connection on stdin/stdout (inetd style), so socat
// listens on 127.0.0.1:PORT and runs one tinysshd per connection:
// `socat TCP-LISTEN:PORT,bind=127.0.0.1,reuseaddr,fork EXEC:'tinysshd -v -x
// sftp=/usr/lib/openssh/sftp-server KEYDIR'`. tinysshd reads authorized_keys
// only from the user's home, so, as with dropbear_fixture, all of it runs in a
// private mount namespace where dir()/home is bind-mounted on /root; the real
// /root is never touched. Sessions run as root with that home as their cwd.
// stderr (socat's and tinysshd -v's) goes to log_path().
#pragma once

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

struct tinysshd_options {
    // The sftp subsystem's program (tinysshd -x sftp=...); empty: none.
    std::string sftp_server = "/usr/lib/openssh/sftp-server";
    std::chrono::milliseconds start_timeout{10'000};
    int bind_attempts = 5;  // new port each time socat cannot bind
};

class tinysshd_fixture {
  public:
    // errc::not_found when tinysshd, tinysshd-makekey, tinysshd-printkey,
    // socat, ssh-keygen, unshare or mount is missing or a private mount
    // namespace is not permitted here (tests skip on it); another error when
    // it should have worked.
    [[nodiscard]] static core::result<tinysshd_fixture> start(tinysshd_options options = {});

    tinysshd_fixture(tinysshd_fixture&& other) noexcept;
    tinysshd_fixture& operator=(tinysshd_fixture&& other) noexcept;
    tinysshd_fixture(const tinysshd_fixture&) = delete;
    tinysshd_fixture& operator=(const tinysshd_fixture&) = delete;
    // Same as stop().
    ~tinysshd_fixture();

    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
    [[nodiscard]] const std::string& dir() const noexcept { return dir_.path(); }
    [[nodiscard]] std::string log_path() const { return dir_.file("tinysshd.log"); }
    // The last few KiB of the log, for failure messages.
    [[nodiscard]] std::string log() const;

    // Private key (mode 0600) authorized for root.
    [[nodiscard]] std::string client_key_path() const { return dir_.file("client_ed25519"); }
    // Holds `[127.0.0.1]:PORT ssh-ed25519 AAAA...` for this server.
    [[nodiscard]] std::string known_hosts_path() const { return dir_.file("known_hosts"); }
    // `ssh-ed25519 AAAA...`.
    [[nodiscard]] const std::string& host_pubkey() const noexcept { return host_pubkey_; }

    // -F /dev/null PORT_OPTION PORT -i KEY -o UserKnownHostsFile=...
    // -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes
    // -o BatchMode=yes. PORT_OPTION: "-p" (exec, forward) or "-P" (cp).
    [[nodiscard]] std::vector<std::string> client_flags(std::string_view port_option = "-p") const;

    [[nodiscard]] bool running() const noexcept { return server_.has_value(); }
    // Kills the listener and every process in its mount namespace (tinysshd
    // sessions and their commands). SIGTERM, SIGKILL after 2 s. Idempotent.
    void stop();

  private:
    tinysshd_fixture(temp_dir dir, tinysshd_options options, std::string host_pubkey,
                     std::string socat)
        : dir_(std::move(dir)),
          options_(std::move(options)),
          host_pubkey_(std::move(host_pubkey)),
          socat_(std::move(socat)) {}

    // Starts socat on port_; errc::connection_failed when it could not bind.
    [[nodiscard]] core::result<void> launch();

    temp_dir dir_;
    tinysshd_options options_;
    std::string host_pubkey_;
    std::string socat_;  // its absolute path
    std::uint16_t port_ = 0;
    std::optional<private_server> server_;  // the listener and its mount namespace
};

}  // namespace tunnel::test
