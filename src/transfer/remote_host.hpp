// One SSH session to a host, the SFTP clients opened on it (one per
// concurrent file) and what the account allows: an account restricted to
// `ForceCommand internal-sftp` runs no commands, so features that would use
// one (remote hashing with sha256sum, scripts) fall back or are refused.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "sftp/client.hpp"
#include "ssh/connect_options.hpp"
#include "ssh/session.hpp"

namespace tunnel::transfer {

struct command_output {
    int exit_status = -1;
    std::string out;
    std::string err;
};

// Another way to the host than a session of our own: the link manager's warm
// sessions (link/pooled_transfer.hpp; docs/link.md, "Pooled sessions").
class pooled_access {
  public:
    virtual ~pooled_access() = default;
    // An SFTP client on a channel of the manager's session; nullopt: declined
    // before anything was written (no manager, no link for the target, the
    // link is down or refused): connect directly.
    virtual asio::awaitable<std::optional<core::result<std::unique_ptr<sftp::client>>>> open_sftp(
        const ssh::connect_options& target, sftp::client_options options) = 0;
    // Runs a command there; nullopt: declined, nothing ran.
    virtual asio::awaitable<std::optional<core::result<command_output>>> run(
        const ssh::connect_options& target, std::string command,
        std::chrono::milliseconds timeout) = 0;
};

class remote_host {
  public:
    // With `pooled`: through the manager when it takes the target, else (and
    // only then) a session of our own.
    static asio::awaitable<core::result<std::shared_ptr<remote_host>>> connect(
        asio::any_io_executor executor, ssh::connect_options target, sftp::client_options sftp = {},
        std::shared_ptr<pooled_access> pooled = nullptr);
    // Wraps a session the caller already has (e.g. from a pool).
    remote_host(std::shared_ptr<ssh::session> s, sftp::client_options sftp);
    // Through the manager, starting with the client it already opened. Every
    // further channel and command goes through it too, never around it.
    remote_host(ssh::connect_options target, std::shared_ptr<pooled_access> pooled,
                std::unique_ptr<sftp::client> first, sftp::client_options sftp);

    // The SFTP client for worker `slot` (0-based), opened on first use.
    asio::awaitable<core::result<sftp::client*>> sftp(std::size_t slot = 0);
    // An extra client for a parallel stream (a spare one if any); give it back after.
    asio::awaitable<core::result<std::unique_ptr<sftp::client>>> borrow_sftp();
    void return_sftp(std::unique_ptr<sftp::client> c) { spare_.push_back(std::move(c)); }

    // True if the account runs commands (probed once with an `echo`).
    asio::awaitable<bool> exec_allowed();
    // Runs `command` (a shell string) to completion and captures its output.
    asio::awaitable<core::result<command_output>> run(std::string command,
                                                      std::chrono::milliseconds timeout);

    // Null through the manager.
    [[nodiscard]] const std::shared_ptr<ssh::session>& session() const noexcept { return session_; }
    [[nodiscard]] bool through_manager() const noexcept { return pooled_ != nullptr; }
    [[nodiscard]] std::string destination() const { return target_.destination(); }
    // "host:path", how messages name a remote path.
    [[nodiscard]] std::string display_path(std::string_view path) const;
    [[nodiscard]] const sftp::client_options& sftp_options() const noexcept {
        return sftp_options_;
    }

  private:
    asio::awaitable<core::result<std::unique_ptr<sftp::client>>> open_client();

    std::shared_ptr<ssh::session> session_;
    ssh::connect_options target_;
    std::shared_ptr<pooled_access> pooled_;
    sftp::client_options sftp_options_;
    std::vector<std::unique_ptr<sftp::client>> clients_;
    std::vector<std::unique_ptr<sftp::client>> spare_;
    bool no_more_channels_ = false;  // the server refused one: stop asking
    std::optional<bool> exec_allowed_;
};

}  // namespace tunnel::transfer
