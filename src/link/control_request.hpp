// The control protocol's requests (JSON lines on the control socket), checked
// before anything acts on them: a request from a hostile or confused client
// gets an error line, never a crash.
//
//   {"cmd": "ls"}                                  every link's status
//   {"cmd": "status", "link": "db"}                one link, with its transports
//   {"cmd": "restart", "link": "db"}               drop the link's sessions, reconnect
//   {"cmd": "switch", "link": "db", "transport": "tcp"}   prefer that transport (name or index)
//   {"cmd": "events"}                              the recent events, then a live stream
//   {"cmd": "down"}                                stop `tunnel up`
//   {"cmd": "exec", "link": "db", "command": "uptime"}   run on the link's session
//   {"cmd": "exec", "destination": "u@h:22", "command": "..."}  ... on the link
//                                                  whose target resolves to it;
//                                                  then frames (link/exec_frames.hpp)
//   {"cmd": "exec", "args": ["web1", "--", "uptime"], "cwd": "/home/u",
//    "env": {"HOME": "/home/u", ...}}           `tunnel exec`'s own command line
//                                                  (the words after "exec"), sent by the
//                                                  small `tunnel` front (apps/tunnel/front):
//                                                  the manager reads it as `tunnel exec`
//                                                  would (link/exec_plan.hpp); the last
//                                                  frame then also carries "exit_code"
//   {"cmd": "sftp", "link": "db"} or {"cmd": "sftp", "destination": "u@h:22"}
//                                                  an sftp subsystem channel on the
//                                                  link's session; then the raw
//                                                  SFTP bytes both ways (link/sftp_service.hpp)
// Any request may carry "id" (a string or number), echoed in the reply.
// Replies: {"ok": true, ...} or {"ok": false, "error": "..."}.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace tunnel::link {

inline constexpr std::size_t max_request_bytes = 16 * 1024;

struct control_request {
    std::string cmd;
    std::string link;         // status, restart, switch
    std::string transport;    // switch
    std::string destination;  // exec, sftp: user@host:port the session must reach
    std::string command;      // exec: the remote command string
    // exec from a command line: the words after "exec", the caller's working
    // directory and environment (never logged: it may hold secrets).
    std::vector<std::string> args;
    std::string cwd;
    std::map<std::string, std::string> env;
    bool from_args = false;
    nlohmann::json id;  // null when absent
};

// Parses and validates one request line (without its newline).
[[nodiscard]] core::result<control_request> parse_control_request(std::string_view line);

// The request as JSON again (what manager::handle takes).
[[nodiscard]] nlohmann::json to_json(const control_request& r);

// {"ok": false, "error": message} (+ id when known).
[[nodiscard]] std::string error_line(std::string_view message, const nlohmann::json& id = {});

}  // namespace tunnel::link
