// tunnel script [opts] TARGET FILE [-- ARGS...]
#include <unistd.h>

#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "commands.hpp"
#include "core/asio.hpp"
#include "core/duration.hpp"
#include "transfer/script_runner.hpp"
#include "transfer/target.hpp"

namespace tunnel::cli {

namespace {

struct script_flags {
    ssh::client_flags connection;
    std::string target;
    std::string file;
    std::vector<std::string> args;
    std::string interpreter;
    bool sudo = false;
    std::string sudo_user;
    std::vector<std::string> env;
    std::string cwd;
    std::string remote_tmp;
    std::string timeout;
    bool json = false;
};

int run_script_command(const script_flags& f) {
    transfer::script_job job;
    job.local_path = f.file;
    job.args = f.args;
    if (!f.interpreter.empty()) job.interpreter = f.interpreter;
    job.options.sudo = f.sudo || !f.sudo_user.empty();
    if (!f.sudo_user.empty()) job.options.sudo_user = f.sudo_user;
    for (const auto& kv : f.env) {
        auto eq = kv.find('=');
        if (eq == std::string::npos || eq == 0)
            return report(
                {core::errc::invalid_argument,
                 fmt::format("--env \"{}\": expected NAME=value, e.g. --env LANG=C.UTF-8", kv)});
        job.options.env.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    }
    if (!f.cwd.empty()) job.options.cwd = f.cwd;
    if (!f.remote_tmp.empty()) {
        if (f.remote_tmp.front() != '/')
            return report(
                {core::errc::invalid_argument,
                 fmt::format(
                     "--remote-tmp \"{}\": give an absolute directory on the host, e.g. /var/tmp",
                     f.remote_tmp)});
        job.remote_tmp = f.remote_tmp;
    }
    if (!f.timeout.empty()) {
        auto d = core::parse_duration(f.timeout);
        if (!d) return report({core::errc::invalid_argument, "--timeout: " + d.error().message});
        job.options.timeout = *d;
    }
    if (::access(f.file.c_str(), R_OK) != 0)
        return report({core::errc::not_found,
                       fmt::format("cannot read script {}: {}", f.file, std::strerror(errno))});
    auto target = transfer::resolve_target(f.connection, f.target);
    if (!target) return report(target.error());

    asio::io_context io;
    exec::run_options options;
    options.capture = f.json;
    exec::exec_events events;
    if (!f.json) {
        events.on_stdout = [](std::string_view d) { write_all(1, d); };
        events.on_stderr = [](std::string_view d) { write_all(2, d); };
    }
    pool::breaker_registry breakers({5, std::chrono::seconds(30)});
    pool::session_pool pool(io.get_executor());
    exec::executor runner(pool, breakers);
    std::optional<core::result<transfer::script_result>> outcome;
    run_until_done(io, [&]() -> asio::awaitable<void> {
        outcome = co_await transfer::run_script(pool, runner, *target, job, std::move(events),
                                                std::move(options));
        pool.close();  // done: sessions through ProxyJump keep their bridges running until closed
    });

    if (!outcome || !*outcome) {
        core::error e = outcome ? outcome->error()
                                : core::error{core::errc::cancelled, "script did not finish"};
        if (f.json)
            std::cout << nlohmann::json{{"destination", target->destination()},
                                        {"error", e.message}}
                             .dump()
                      << "\n";
        fmt::print(stderr, "tunnel: {}\n", e.message);
        if (e.code == core::errc::denied) return 1;
        return exit_code_for(e);
    }
    const auto& r = **outcome;
    if (f.json)
        std::cout << nlohmann::json{{"destination", r.run.destination},
                                    {"exit_status", r.run.exit_status},
                                    {"exit_code", r.run.exit_code()},
                                    {"timed_out", r.run.timed_out},
                                    {"stdout", r.run.out},
                                    {"stderr", r.run.err},
                                    {"remote_dir", r.remote_dir},
                                    {"cleaned_up", r.cleaned_up},
                                    {"duration_ms", r.run.duration.count()}}
                         .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                  << "\n";
    if (r.run.timed_out)
        fmt::print(stderr, "tunnel: script timed out after {} on {}\n", f.timeout,
                   r.run.destination);
    return r.run.exit_code();
}

}  // namespace

void add_script_command(CLI::App& app, command_runner& run) {
    auto flags = std::make_shared<script_flags>();
    auto* cmd =
        app.add_subcommand("script", "Upload a local script, run it on a host, and remove it");
    cmd->footer(
        "Examples:\n"
        "  tunnel script web1 ./setup.sh -- --env prod\n"
        "  tunnel script --sudo --interpreter python3 --timeout 5m db1 migrate.py\n"
        "The script goes to a new private directory (mode 0700) under /tmp, runs with "
        "--interpreter, else its\n"
        "#! line, else sh, and the directory is removed afterwards, also on failure or timeout.\n"
        "Exit status: the script's; 124 on timeout; 255 connection failure; 2 bad usage.");
    add_connection_flags(*cmd, flags->connection);
    add_agent_flags(*cmd, flags->connection);
    cmd->add_option("--interpreter", flags->interpreter,
                    "Run the script with this program (e.g. python3, bash)");
    cmd->add_flag("--sudo", flags->sudo, "Run through sudo -n");
    cmd->add_option("--sudo-user", flags->sudo_user, "Run through sudo as this user");
    cmd->add_option("--env", flags->env, "Set NAME=value for the script")
        ->take_all()
        ->allow_extra_args(false);
    cmd->add_option("--cwd", flags->cwd, "Working directory for the script");
    cmd->add_option("--remote-tmp", flags->remote_tmp,
                    "Directory on the host for the private script directory (default /tmp; use "
                    "another if /tmp is noexec)");
    cmd->add_option("--timeout", flags->timeout,
                    "Kill the script after this long (e.g. 30s, 5m); exit 124");
    cmd->add_flag("--json", flags->json, "Print one JSON object with status and output at the end");
    cmd->add_option("target", flags->target, "[user@]host[:port] or an ssh_config alias")
        ->required();
    cmd->add_option("file", flags->file, "Local script to run")->required();
    cmd->add_option("args", flags->args, "Arguments for the script (after --)");
    cmd->callback([flags, &run] { run = [flags] { return run_script_command(*flags); }; });
}

}  // namespace tunnel::cli
