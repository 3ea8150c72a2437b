// Flag wiring shared by subcommands: connection flags, errors and exit codes.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "core/error.hpp"
#include "ssh/destination.hpp"

namespace tunnel::cli {

inline constexpr int exit_usage = 2;
inline constexpr int exit_connection = 255;

// -p -l -i/--private-key -F -o, as ssh spells them.
void add_connection_flags(CLI::App& cmd, ssh::client_flags& flags, bool with_short_identity = true);

// Prints "tunnel: <message>" on stderr and returns the exit code for it:
// 2 for bad input, 255 for connection/auth/host-key failures.
int report(const core::error& e);

// Exit code for an error without printing.
int exit_code_for(const core::error& e);

}  // namespace tunnel::cli
