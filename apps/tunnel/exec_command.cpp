// tunnel exec [opts] TARGET -- CMD...
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "commands.hpp"
#include "core/asio.hpp"
#include "core/terminal_prompt.hpp"
#include "exec/exec_config.hpp"
#include "exec/executor.hpp"
#include "exec_flags.hpp"
#include "link/exec_client.hpp"

namespace tunnel::cli {

namespace {

nlohmann::json to_json(const exec::exec_result& r) {
    return {{"destination", r.destination},
            {"exit_status", r.signal ? nlohmann::json(nullptr) : nlohmann::json(r.exit_status)},
            {"signal", r.signal ? nlohmann::json(*r.signal) : nlohmann::json(nullptr)},
            {"timed_out", r.timed_out},
            {"exit_code", r.exit_code()},
            {"stdout", r.out},
            {"stderr", r.err},
            {"duration_ms", r.duration.count()},
            {"attempts", r.attempts}};
}

int run_exec(const exec_flags& f) {
    auto cmd = build_command(f);
    if (!cmd) return report(cmd.error());
    auto ctx = ssh::process_resolve_context();
    auto settings = exec::load_exec_config(ctx.home);  // rules and defaults from the config file
    if (!settings) return report(settings.error());
    auto rules = exec::command_rules::parse(f.rules);
    if (!rules) return report(rules.error());
    for (const auto& r : settings->rules.rules()) rules->add(r);
    if (!cmd->timeout && settings->timeout) cmd->timeout = settings->timeout;
    const unsigned retries = f.retries.value_or(settings->retries.value_or(0));
    if (auto allowed =
            cmd->argv.size() == 1 ? rules->check(cmd->argv.front()) : rules->check(cmd->argv);
        !allowed)
        return report(allowed.error());

    auto target = resolve_target(f.connection, f.target);
    if (!target) return report(target.error());

    asio::io_context io;
    exec::run_options options;
    options.retries = retries;
    options.capture = f.json;
    if (f.ask_sudo_pass)
        options.sudo_password = [] { return core::ask_secret("[sudo] password: "); };
    if (!f.stdin_path.empty()) {
        auto in = exec::open_input(io.get_executor(), f.stdin_path);
        if (!in) return report(in.error());
        options.input = std::move(*in);
    }
    exec::exec_events events;
    if (!f.json) {
        events.on_stdout = [](std::string_view d) { write_all(1, d); };
        events.on_stderr = [](std::string_view d) { write_all(2, d); };
    }
    // The breaker must not cut short the retries the user asked for.
    pool::breaker_registry breakers({std::max(5u, retries + 1), std::chrono::seconds(30)});
    pool::session_pool pool(io.get_executor());
    exec::executor runner(pool, breakers, std::move(*rules));
    // A running `tunnel up` whose link reaches the target runs it on its warm
    // session (docs/link.md, "Pooled sessions"); else our own connection.
    if (auto control = link::pooled_control_path(); control && !manager_declined()) {
        auto pooled = std::make_shared<link::manager_exec>(*control);
        pooled->name_destination(target->destination(), f.target);
        runner.use_pooled(std::move(pooled));
    }

    std::optional<core::result<exec::exec_result>> outcome;
    run_until_done(io, [&]() -> asio::awaitable<void> {
        outcome = co_await runner.run(*target, *cmd, std::move(events), std::move(options));
        pool.close();  // the command is done: nothing (a jump bridge) keeps running after it
    });

    if (!outcome || !*outcome) {
        core::error e =
            outcome ? outcome->error() : core::error{core::errc::cancelled, "exec did not finish"};
        if (f.json)
            std::cout << nlohmann::json{{"destination", target->destination()},
                                        {"error", e.message},
                                        {"code", core::to_string(e.code)}}
                             .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                      << "\n";
        fmt::print(stderr, "tunnel: {}\n", e.message);
        if (e.code == core::errc::permission_denied) return 1;  // sudo refused on the host
        return exit_code_for(e);
    }
    const auto& r = **outcome;
    if (f.json)
        std::cout << to_json(r).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                  << "\n";
    if (r.timed_out)
        fmt::print(stderr, "tunnel: command timed out after {} on {}\n", f.timeout, r.destination);
    return r.exit_code();
}

}  // namespace

void add_exec_command(CLI::App& app, command_runner& run) {
    auto flags = std::make_shared<exec_flags>();
    auto* cmd = app.add_subcommand("exec", "Run a command on a remote host");
    cmd->footer(
        "Examples:\n"
        "  tunnel exec web1 -- uptime\n"
        "  tunnel exec -p 2222 --sudo --env LANG=C --cwd /srv/app deploy@10.0.0.5 -- 'systemctl "
        "status app'\n"
        "One argument after -- is a shell string; several are an argv, each quoted as given.\n"
        "Exit status: the remote command's; 124 on timeout; 255 connection, auth or host-key "
        "failure; 2 bad usage.");
    add_exec_options(*cmd, *flags);
    cmd->callback([flags, &run] { run = [flags] { return run_exec(*flags); }; });
}

}  // namespace tunnel::cli
