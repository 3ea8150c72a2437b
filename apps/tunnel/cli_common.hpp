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

// Exit code for an error without printing.
int exit_code_for(const core::error& e);

}  // namespace tunnel::cli
