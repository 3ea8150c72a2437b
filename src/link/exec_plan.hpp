// A pooled exec sent as a command line (control_request::from_args): the
// small `tunnel` front (apps/tunnel/front) passes `tunnel exec`'s words, its
// working directory and its environment, and the manager turns them into the
// link, destination and remote command the CLI would have sent itself. The
// planner lives with the CLI (apps/tunnel/exec_plan.cpp), which owns the
// flags' meaning; `tunnel up` hands it to its control server.
//
// A plan that cannot be made (a flag the pooled path does not take, a bad
// target, a denied command, a different configuration) is a refusal: the
// front then runs the whole CLI, which reports or handles it as always.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "core/error.hpp"
#include "link/control_request.hpp"

namespace tunnel::link {

struct exec_plan {
    std::string link;         // a link name the user typed as TARGET, or empty
    std::string destination;  // user@host:port after ssh_config
    std::string command;      // the remote command string (exec/command.hpp)
};

using exec_planner = std::function<core::result<exec_plan>(const control_request&)>;

// The exit code and stderr line `tunnel exec` would end with, for the last
// frame of a command-line exec: the remote status, 128+N for signal N, 255
// when the host reported neither or the link failed mid-command.
struct exec_ending {
    int exit_code = 255;
    std::optional<std::string> message;  // printed as is, with a newline
};

}  // namespace tunnel::link
