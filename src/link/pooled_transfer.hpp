// The caller's side of pooled SFTP (link/sftp_service.hpp): `tunnel cp` and
// `tunnel sync` open their SFTP sessions on a running `tunnel up`'s warm
// session when one of its links reaches the target, and their commands
// (remote hashing, chown) go through its pooled exec. When no manager
// answers, no link matches or the link refuses, nothing was written and they
// connect themselves.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "link/exec_client.hpp"
#include "transfer/remote_host.hpp"

namespace tunnel::link {

class manager_transfer final : public transfer::pooled_access {
  public:
    explicit manager_transfer(std::string socket_path);

    // The user named `destination` as `name` (the host part of host:path,
    // without user@ or :port): the manager is asked for the link of that
    // name first, then for the link whose target resolves to `destination`.
    void name_destination(const std::string& destination, const std::string& name);

    asio::awaitable<std::optional<core::result<std::unique_ptr<sftp::client>>>> open_sftp(
        const ssh::connect_options& target, sftp::client_options options) override;
    asio::awaitable<std::optional<core::result<transfer::command_output>>> run(
        const ssh::connect_options& target, std::string command,
        std::chrono::milliseconds timeout) override;

  private:
    std::string socket_;
    std::map<std::string, std::string> names_;
    manager_exec exec_;
};

}  // namespace tunnel::link
