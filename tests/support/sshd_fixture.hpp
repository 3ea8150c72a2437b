// A real OpenSSH server for integration tests and benchmarks (ARCHITECTURE §7).
//
//   auto sshd = tunnel::test::sshd_fixture::start();
//   ASSERT_TRUE(sshd) << sshd.error().message;
//   run({"ssh", "-F", "/dev/null", "-p", std::to_string(sshd->port()), "-i",
//        sshd->client_key_path(), "-o", "UserKnownHostsFile=" + sshd->known_hosts_path(),
//        "-o", "BatchMode=yes", "root@127.0.0.1", "true"});
//
// `/usr/sbin/sshd -D -e -f <dir>/sshd_config` on 127.0.0.1 and a port chosen
// at runtime, with its own host key and an authorized client key (ed25519,
// generated once per test process), `UsePAM no`, `SetEnv SHLVL=1`, no
// AcceptEnv. sshd's stderr (LogLevel VERBOSE) goes to log_path().
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "support/process.hpp"

namespace tunnel::test {

struct sshd_options {
    int max_sessions = 10;
    // sshd_config lines. sshd keeps the first value of a keyword, so lines
    // before the first `Match` go above the fixture's defaults (and override
    // them); a `Match` block and everything after it goes at the end.
    std::vector<std::string> extra_config;
    // Empty: no sftp subsystem.
    std::string sftp_server = "/usr/lib/openssh/sftp-server";
    // Non-empty: sshd runs in a mount namespace of its own with this
    // directory mounted on /etc/pam.d, for a PAM stack of the test's own
    // (keyboard-interactive challenges) while the machine's /etc stays as it
    // is. Pair it with `UsePAM yes` in extra_config.
    std::string pam_config_dir{};
    std::chrono::milliseconds start_timeout{10'000};
    int bind_attempts = 5;  // new port each time sshd cannot bind
};

class sshd_fixture {
  public:
    [[nodiscard]] static core::result<sshd_fixture> start(sshd_options options = {});

    sshd_fixture(sshd_fixture&& other) noexcept;
    sshd_fixture& operator=(sshd_fixture&& other) noexcept;
    sshd_fixture(const sshd_fixture&) = delete;
    sshd_fixture& operator=(const sshd_fixture&) = delete;
    // Same as stop().
    ~sshd_fixture();

    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
    [[nodiscard]] std::string host() const { return "127.0.0.1"; }
    [[nodiscard]] const std::string& dir() const noexcept { return dir_.path(); }
    [[nodiscard]] std::string log_path() const { return dir_.file("sshd.log"); }
    // The whole log so far (all starts), for failure messages.
    [[nodiscard]] std::string log() const;

    // Private key (mode 0600), its `ssh-ed25519 AAAA... comment` line.
    [[nodiscard]] std::string client_key_path() const { return dir_.file("client_ed25519"); }
    [[nodiscard]] const std::string& client_pubkey() const noexcept { return client_pubkey_; }
    // `ssh-ed25519 AAAA...` (no comment).
    [[nodiscard]] const std::string& host_pubkey() const noexcept { return host_pubkey_; }
    // Holds `[127.0.0.1]:PORT ssh-ed25519 AAAA...` for this server.
    [[nodiscard]] std::string known_hosts_path() const { return dir_.file("known_hosts"); }
    [[nodiscard]] std::string authorized_keys_path() const { return dir_.file("authorized_keys"); }
    [[nodiscard]] std::string config_path() const { return dir_.file("sshd_config"); }

    // Writes an ssh client config in dir(): `extra` first (ssh keeps the
    // first value, so it overrides), then `Host <alias>` with HostName, Port,
    // User root, IdentityFile, IdentitiesOnly yes, UserKnownHostsFile,
    // StrictHostKeyChecking yes, BatchMode yes. Returns the file's path; each
    // call writes a new file (empty string if it cannot be written). Use as
    // `ssh -F PATH ALIAS`.
    [[nodiscard]] std::string write_ssh_config(std::string_view extra = {},
                                               std::string_view alias = "test-sshd");

    // The listener's pid while running, else -1.
    [[nodiscard]] pid_t pid() const noexcept { return process_ ? process_->pid() : -1; }
    [[nodiscard]] bool running() const noexcept { return process_.has_value(); }

    // Kills the listener and every session it forked (clients see the
    // connection drop). SIGTERM, SIGKILL after 2 s. Idempotent.
    void stop();
    // stop(), then start again on the same port with the same keys.
    [[nodiscard]] core::result<void> restart();

  private:
    sshd_fixture(temp_dir dir, sshd_options options, std::string client_pubkey,
                 std::string host_pubkey)
        : dir_(std::move(dir)),
          options_(std::move(options)),
          client_pubkey_(std::move(client_pubkey)),
          host_pubkey_(std::move(host_pubkey)) {}

    // Starts sshd on port_; errc::connection_failed when it could not bind.
    [[nodiscard]] core::result<void> launch();
    [[nodiscard]] core::result<void> write_config() const;

    temp_dir dir_;
    sshd_options options_;
    std::string client_pubkey_;
    std::string host_pubkey_;
    std::uint16_t port_ = 0;
    std::optional<child_process> process_;
    int ssh_configs_written_ = 0;
};

}  // namespace tunnel::test
