#include "exec_flags.hpp"

#include <sys/ioctl.h>

#include <fmt/format.h>

#include "cli_common.hpp"
#include "core/duration.hpp"

namespace tunnel::cli {

core::result<exec::command> build_command(const exec_flags& f) {
    exec::command cmd;
    cmd.argv = f.command;
    cmd.sudo = f.sudo || !f.sudo_user.empty() || f.ask_sudo_pass;
    if (!f.sudo_user.empty()) cmd.sudo_user = f.sudo_user;
    cmd.sudo_password = f.ask_sudo_pass;
    for (const auto& kv : f.env) {
        auto eq = kv.find('=');
        if (eq == std::string::npos || eq == 0)
            return core::fail(
                core::errc::invalid_argument,
                fmt::format("--env \"{}\": expected NAME=value, e.g. --env LANG=C.UTF-8", kv));
        cmd.env.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    }
    if (!f.cwd.empty()) cmd.cwd = f.cwd;
    cmd.pty = f.pty;
    if (winsize ws{}; f.pty && ::ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
        cmd.pty_columns = ws.ws_col;
        cmd.pty_rows = ws.ws_row;
    }
    if (!f.timeout.empty()) {
        auto d = core::parse_duration(f.timeout);
        if (!d) return core::fail(core::errc::invalid_argument, "--timeout: " + d.error().message);
        cmd.timeout = *d;
    }
    if (auto v = exec::validate(cmd); !v) return tl::unexpected(v.error());
    return cmd;
}

void add_exec_options(CLI::App& cmd, exec_flags& flags) {
    add_connection_flags(cmd, flags.connection);
    add_agent_flags(cmd, flags.connection);
    cmd.add_flag("--sudo", flags.sudo, "Run through sudo -n (fails fast if sudo wants a password)");
    cmd.add_option("--sudo-user", flags.sudo_user, "Run through sudo as this user");
    cmd.add_flag("--ask-sudo-pass", flags.ask_sudo_pass,
                 "Answer sudo's password prompt (asked on the terminal or via SSH_ASKPASS)");
    cmd.add_option("--env", flags.env, "Set NAME=value for the command (works without AcceptEnv)")
        ->take_all()
        ->allow_extra_args(false);  // one value per flag: never swallow TARGET or --
    cmd.add_option("--cwd", flags.cwd, "Working directory for the command");
    cmd.add_option("--timeout", flags.timeout,
                   "Kill the command after this long (e.g. 30s, 5m); exit 124");
    cmd.add_option("--retries", flags.retries,
                   "Retry connection failures this many times (never re-runs a command)");
    cmd.add_flag("--pty,-t", flags.pty, "Allocate a pseudo-terminal");
    cmd.add_option("--stdin", flags.stdin_path,
                   "Feed this file (or - for our stdin) to the command's stdin");
    cmd.add_flag("--json", flags.json, "Print one JSON object with status and output at the end");
    cmd.add_option("--rule", flags.rules,
                   "Command rule allow:GLOB or deny:GLOB (checked before sending)")
        ->take_all()
        ->allow_extra_args(false);  // one value per flag: never swallow TARGET or --
    cmd.add_option("target", flags.target, "[user@]host[:port] or an ssh_config alias")->required();
    cmd.add_option("command", flags.command, "Command to run (after --)")->required();
}

}  // namespace tunnel::cli
