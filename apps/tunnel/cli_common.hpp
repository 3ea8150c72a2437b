// Flag wiring shared by subcommands: connection flags, errors and exit codes.
#pragma once

#include <string>
#include <string_view>

#include <CLI/CLI.hpp>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "core/run_until_done.hpp"
#include "ssh/destination.hpp"

namespace tunnel::cli {

inline constexpr int exit_usage = 2;
inline constexpr int exit_connection = 255;

// Writes all of `data` to fd 1 or 2 (retrying short writes and EINTR);
// output a reader stopped reading is dropped.
void write_all(int fd, std::string_view data);

// One keyboard-interactive prompt on the terminal (name and instruction
// first, echo as the server asked); nullopt without a terminal or askpass.
[[nodiscard]] std::optional<std::string> ask_interactive(const ssh::interactive_prompt& p);

// TARGET resolved through ~/.ssh/config and the connection flags, with
// password, passphrase and keyboard-interactive prompts on the terminal.
[[nodiscard]] core::result<ssh::connect_options> resolve_target(const ssh::client_flags& flags,
                                                                const std::string& target);

// -p -l -i/--private-key -F -o, as ssh spells them.
void add_connection_flags(CLI::App& cmd, ssh::client_flags& flags, bool with_short_identity = true);

// -A / -a: agent forwarding on or off (ForwardAgent), the last one given wins.
void add_agent_flags(CLI::App& cmd, ssh::client_flags& flags);

// Prints "tunnel: <message>" on stderr and returns the exit code for it:
// 2 for bad input, 255 for connection/auth/host-key failures.
int report(const core::error& e);

// Every command's io_context runs through core::run_until_done.
using core::run_until_done;

// The `tunnel` program's absolute path, to write down where it is run again
// (a systemd unit): the front's (argv[0] as it passes it), else our own.
void set_program_path(const char* argv0);

// Whether the front already asked a running `tunnel up` to run this exec and
// it declined (no link for the target, link down, exec_pool: false): then
// the exec connects itself at once. Read from the environment once, at start
// (take_front_notes), and removed from it, so no child process inherits it.
void take_front_notes();
[[nodiscard]] bool manager_declined();
[[nodiscard]] std::string program_path();

// Exit code for an error without printing.
int exit_code_for(const core::error& e);

}  // namespace tunnel::cli
