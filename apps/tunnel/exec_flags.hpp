// `tunnel exec`'s flags: their definitions and what they build. Shared by the
// subcommand (exec_command.cpp) and the manager's reading of command lines
// that the `tunnel` front sends it (exec_plan.cpp), so both read a command
// line the same way.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/error.hpp"
#include "exec/command.hpp"
#include "ssh/destination.hpp"

namespace tunnel::cli {

struct exec_flags {
    ssh::client_flags connection;
    std::string target;
    std::vector<std::string> command;
    bool sudo = false;
    std::string sudo_user;
    bool ask_sudo_pass = false;
    std::vector<std::string> env;
    std::string cwd;
    std::string timeout;
    std::string stdin_path;
    std::optional<unsigned> retries;
    bool pty = false;
    bool json = false;
    std::vector<std::string> rules;
};

// Defines exec's options and positionals on `cmd`, stored into `flags`.
void add_exec_options(CLI::App& cmd, exec_flags& flags);

// The command the flags describe, validated (--env, --timeout, ...).
[[nodiscard]] core::result<exec::command> build_command(const exec_flags& f);

}  // namespace tunnel::cli
