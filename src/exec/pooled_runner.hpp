// A place other than this process's own sessions to run a command: the link
// manager's warm sessions (link/exec_client.hpp), as ControlMaster is for
// OpenSSH. The executor asks it first; when it declines, nothing ran and the
// executor connects itself.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "ssh/connect_options.hpp"
#include "ssh/session.hpp"

namespace tunnel::exec {

struct input_source;

struct pooled_outcome {
    std::optional<int> exit_status;
    std::optional<std::string> signal;
    bool cut_off = false;  // the deadline passed: the command was killed
};

struct pooled_request {
    const ssh::connect_options* target = nullptr;
    std::string remote_command;                         // exec/command.hpp remote_command()
    ssh::time_point deadline = ssh::time_point::max();  // kill the command then
    std::function<void(std::string_view)> on_stdout;
    std::function<void(std::string_view)> on_stderr;
    std::shared_ptr<input_source> input;  // read only once the command has started
};

class pooled_runner {
  public:
    virtual ~pooled_runner() = default;
    // nullopt: declined, nothing ran (no manager, no link for the target, the
    // link is down): run it directly. An error: the command may have run partly.
    virtual asio::awaitable<std::optional<core::result<pooled_outcome>>> run(pooled_request r) = 0;
};

}  // namespace tunnel::exec
