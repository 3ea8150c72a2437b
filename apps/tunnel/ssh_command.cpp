// tunnel ssh [opts] TARGET [-- COMMAND...]
#include <algorithm>
#include <csignal>
#include <cstdlib>

#include <fmt/format.h>

#include "cli_common.hpp"
#include "commands.hpp"
#include "core/asio.hpp"
#include "exec/command.hpp"
#include "exec/executor.hpp"
#include "shell/escape_filter.hpp"
#include "shell/interactive_session.hpp"
#include "shell/terminal_mode.hpp"
#include "ssh/session.hpp"

namespace tunnel::cli {

namespace {

struct ssh_flags {
    ssh::client_flags connection;
    std::string target;
    std::vector<std::string> command;
    int force_tty = 0;  // -t once: a pty when stdin is a terminal; -tt: always
    bool no_tty = false;
    std::string escape = "~";
};

// The local TERM for the pty request; "dumb" when unset or unusable.
std::string local_term() {
    const char* t = std::getenv("TERM");
    std::string_view term = t ? t : "";
    if (term.empty()) return "dumb";
    const bool printable = term.size() <= 64 && std::all_of(term.begin(), term.end(), [](char c) {
                               return c > 0x20 && c < 0x7f;
                           });
    if (!printable) {
        fmt::print(stderr, "tunnel: TERM is not a terminal name; asking for \"dumb\"\n");
        return "dumb";
    }
    return std::string(term);
}

int run_ssh(const ssh_flags& f) {
    auto escape = shell::parse_escape_char(f.escape);
    if (!escape) return report(escape.error());
    if (f.force_tty > 0 && f.no_tty)
        return report({core::errc::invalid_argument,
                       "-t asks for a terminal and -T refuses one: keep only one of them"});

    shell::interactive_options options;
    options.escape_char = *escape;
    if (!f.command.empty()) {
        exec::command cmd;
        cmd.argv = f.command;
        if (auto v = exec::validate(cmd); !v) return report(v.error());
        options.command = exec::remote_command(cmd);
    }

    // ssh's rules: a pty for a login shell or with -t; never with -T; not
    // when stdin is not a terminal unless -tt.
    bool pty = !f.no_tty && (f.force_tty > 0 || f.command.empty());
    if (pty && !shell::is_terminal(0) && f.force_tty < 2) {
        if (f.force_tty == 1)
            fmt::print(stderr,
                       "Pseudo-terminal will not be allocated because stdin is not a terminal.\n");
        pty = false;
    }
    options.pty = pty;
    if (pty) {
        options.term = local_term();
        auto size = shell::read_window_size(0);
        if (!size) size = shell::read_window_size(1);
        if (size) options.size = *size;
    }

    auto target = resolve_target(f.connection, f.target);
    if (!target) return report(target.error());

    // asio sets O_NONBLOCK on our dups of 0, 1 and 2, which share their file
    // descriptions with the shell that started us: put the flags back.
    const shell::file_flags_guard flags({0, 1, 2});
    std::signal(SIGPIPE, SIG_IGN);  // a closed stdout ends the output, not us (as ssh)

    asio::io_context io;
    std::optional<core::result<shell::interactive_outcome>> outcome;
    run_until_done(io, [&]() -> asio::awaitable<void> {
        auto connecting = ssh::session::connect(io.get_executor(), *target);
        auto s = co_await std::move(connecting);
        if (!s) {
            outcome = tl::unexpected(s.error());
            co_return;
        }
        std::shared_ptr<ssh::session> session = *s;
        auto running = shell::run_interactive(session, options);
        outcome = co_await std::move(running);
        session->disconnect();
    });

    if (!outcome || !*outcome) {
        core::error e = outcome ? outcome->error()
                                : core::error{core::errc::cancelled, "the session did not finish"};
        fmt::print(stderr, "tunnel: {}\n", e.message);
        return e.code == core::errc::disconnected ? exit_connection : exit_code_for(e);
    }
    const auto& o = **outcome;
    if (o.pty) fmt::print(stderr, "Connection to {} closed.\n", target->host);
    if (o.escape_disconnect) return exit_connection;  // as ssh after ~.
    if (o.local_signal) {
        fmt::print(stderr, "tunnel: killed by signal {}\n", o.local_signal);
        return exit_connection;
    }
    exec::exec_result r;  // the same exit code rules as tunnel exec
    if (o.exit_status) r.exit_status = *o.exit_status;
    r.signal = o.exit_signal;
    if (!o.exit_status && !o.exit_signal) r.exit_status = exit_connection;
    return r.exit_code();
}

}  // namespace

void add_ssh_command(CLI::App& app, command_runner& run) {
    auto flags = std::make_shared<ssh_flags>();
    auto* cmd =
        app.add_subcommand("ssh", "Log in to a host (a shell), or run a command, as ssh does");
    cmd->footer(
        "Examples:\n"
        "  tunnel ssh web1                      # login shell in a pty\n"
        "  tunnel ssh -p 2222 deploy@10.0.0.5 -- tail -f /var/log/syslog\n"
        "  tunnel ssh -t web1 -- htop           # a command that needs a terminal\n"
        "Escapes (with a pty, after a newline): ~. disconnect, ~? help, ~~ sends one ~\n"
        "One argument after -- is a shell string; several are an argv, each quoted as given.\n"
        "Exit status: the remote command's; 128+N when it died of signal N; 255 connection,\n"
        "auth or host-key failure, lost connection or ~.; 2 bad usage.");
    add_connection_flags(*cmd, flags->connection);
    add_agent_flags(*cmd, flags->connection);
    cmd->add_flag("-t", flags->force_tty,
                  "Allocate a pty even with a command; twice (-tt) even when stdin is not a "
                  "terminal");
    cmd->add_flag("-T", flags->no_tty, "Never allocate a pty");
    cmd->add_option("-e", flags->escape,
                    "Escape character: one character, ^X for a control character, or none "
                    "(default ~)");
    cmd->add_option("target", flags->target, "[user@]host[:port] or an ssh_config alias")
        ->required();
    cmd->add_option("command", flags->command,
                    "Command to run instead of the login shell (after --)");
    cmd->callback([flags, &run] { run = [flags] { return run_ssh(*flags); }; });
}

}  // namespace tunnel::cli
