// A real ssh-agent for tests: `ssh-agent -D -a <dir>/agent.sock`, so the
// agent itself is our child and is killed by PID in the destructor.
//
//   auto agent = tunnel::test::ssh_agent_fixture::start();
//   ASSERT_TRUE(agent) << agent.error().message;
//   ASSERT_TRUE(agent->add_key(sshd->client_key_path()));
//   run({...}, {.env = agent->env()});
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>

#include "core/error.hpp"
#include "support/process.hpp"

namespace tunnel::test {

class ssh_agent_fixture {
  public:
    [[nodiscard]] static core::result<ssh_agent_fixture> start(
        std::chrono::milliseconds timeout = std::chrono::milliseconds{10'000});

    ssh_agent_fixture(ssh_agent_fixture&& other) noexcept;
    ssh_agent_fixture& operator=(ssh_agent_fixture&& other) noexcept;
    ssh_agent_fixture(const ssh_agent_fixture&) = delete;
    ssh_agent_fixture& operator=(const ssh_agent_fixture&) = delete;
    ~ssh_agent_fixture();

    [[nodiscard]] std::string socket_path() const { return dir_.file("agent.sock"); }
    [[nodiscard]] std::string log_path() const { return dir_.file("agent.log"); }
    [[nodiscard]] pid_t pid() const noexcept { return process_ ? process_->pid() : -1; }
    // SSH_AUTH_SOCK=socket_path(), for run_options/spawn_options.
    [[nodiscard]] env_change env() const;

    // `ssh-add PATH` with SSH_AUTH_SOCK set in ssh-add's environment only.
    [[nodiscard]] core::result<void> add_key(const std::string& path) const;
    // `ssh-add -L`: the public keys the agent holds, one per line.
    [[nodiscard]] core::result<std::string> list_keys() const;

    // Kills the agent (SIGTERM, SIGKILL after 2 s). Idempotent.
    void stop();

  private:
    explicit ssh_agent_fixture(temp_dir dir) : dir_(std::move(dir)) {}

    temp_dir dir_;
    std::optional<child_process> process_;
};

}  // namespace tunnel::test
