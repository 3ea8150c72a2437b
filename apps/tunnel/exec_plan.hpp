// The manager's reading of a `tunnel exec` command line sent by the `tunnel`
// front (apps/tunnel/front; link/exec_plan.hpp): `tunnel up` plans with it.
#pragma once

#include "core/error.hpp"
#include "link/control_request.hpp"
#include "link/exec_plan.hpp"

namespace tunnel::cli {

// The link, destination and remote command `tunnel exec` would send to the
// manager for req.args, read with the caller's environment and working
// directory. Refused (the front then runs the whole CLI) for anything the
// pooled path leaves to the CLI: a pseudo-terminal, stdin, --json, sudo, a
// timeout, agent forwarding, -v, a command line that does not parse, a
// command the rules deny, or a configuration this process would read
// differently.
[[nodiscard]] core::result<link::exec_plan> plan_pooled_exec(const link::control_request& req);

}  // namespace tunnel::cli
