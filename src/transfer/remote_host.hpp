// One SSH session to a host, the SFTP clients opened on it (one per
// concurrent file) and what the account allows: an account restricted to
// `ForceCommand internal-sftp` runs no commands, so features that would use
// one (remote hashing with sha256sum, scripts) fall back or are refused.
#pragma once

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

class remote_host {
  public:
    static asio::awaitable<core::result<std::shared_ptr<remote_host>>> connect(
        asio::any_io_executor executor, ssh::connect_options target,
        sftp::client_options sftp = {});
    // Wraps a session the caller already has (e.g. from a pool).
    remote_host(std::shared_ptr<ssh::session> s, sftp::client_options sftp);

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

    [[nodiscard]] const std::shared_ptr<ssh::session>& session() const noexcept { return session_; }
    [[nodiscard]] std::string destination() const { return session_->options().destination(); }
    // "host:path", how messages name a remote path.
    [[nodiscard]] std::string display_path(std::string_view path) const;
    [[nodiscard]] const sftp::client_options& sftp_options() const noexcept {
        return sftp_options_;
    }

  private:
    std::shared_ptr<ssh::session> session_;
    sftp::client_options sftp_options_;
    std::vector<std::unique_ptr<sftp::client>> clients_;
    std::vector<std::unique_ptr<sftp::client>> spare_;
    bool no_more_channels_ = false;  // the server refused one: stop asking
    std::optional<bool> exec_allowed_;
};

}  // namespace tunnel::transfer
