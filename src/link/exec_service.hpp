// The manager's side of a pooled exec (docs/link.md, "Pooled sessions"):
// `tunnel exec`, `run` and friends in other processes send
// {"cmd":"exec","link":...,"destination":...,"command":...} on the control
// socket; the command runs on a channel of the matching link's warm session
// and the connection then carries its stdin, stdout, stderr and exit status
// as frames (link/exec_frames.hpp).
//
// Matching never sends a command elsewhere than asked: "link" must name a
// link, else "destination" (user@host:port after ssh_config) must equal the
// destination a link's target resolves to. A link that is down, a link with
// exec_pool: false, or a channel the server refuses is answered
// {"ok": false, "fallback": true, ...}: nothing ran, the caller connects itself.
// Only an exec request that failed after it was sent is answered with
// "maybe_started": true (the caller reports it and never runs it again).
#pragma once

#include <memory>
#include <string>

#include "core/asio.hpp"
#include "link/control_request.hpp"
#include "link/exec_plan.hpp"
#include "link/manager.hpp"

namespace tunnel::link {

// Runs `req` (an exec request) and streams it over `socket` until the command
// ends or the caller goes away (then the command is killed). `leftover`: bytes
// already read after the request line.
asio::awaitable<void> serve_exec(std::shared_ptr<asio::local::stream_protocol::socket> socket,
                                 std::shared_ptr<manager> m, control_request req,
                                 std::string leftover);

// The exit code and message for the last frame of a command-line exec
// (`end`: {"exit_status": N}, {"signal": "TERM"} or {"error": "..."}).
[[nodiscard]] exec_ending ending_of(const nlohmann::json& end);

}  // namespace tunnel::link
