// tunnel service logs [opts] TARGET UNIT [-n N] [--follow] [--sudo]
#include <unistd.h>

#include <fmt/format.h>

#include "cli_common.hpp"
#include "commands.hpp"
#include "core/terminal_prompt.hpp"
#include "exec/executor.hpp"
#include "ops/audit.hpp"

namespace tunnel::cli {

namespace {

struct logs_flags {
    ssh::client_flags connection;
    std::string target;
    std::string unit;
    unsigned lines = 50;
    bool follow = false;
    bool sudo = false;
};

int run_logs(const logs_flags& f) {
    auto line = ops::journal_command(f.unit, f.lines, f.follow);
    if (!line) return report(line.error());
    auto target = resolve_target(f.connection, f.target);
    if (!target) return report(target.error());

    asio::io_context io;
    pool::session_pool pool(io.get_executor());
    pool::breaker_registry breakers({5, std::chrono::seconds(30)});
    exec::executor runner(pool, breakers);
    exec::command cmd;
    cmd.argv = {*line};
    cmd.sudo = f.sudo;
    exec::exec_events events;
    events.on_stdout = [](std::string_view d) { write_all(1, d); };
    events.on_stderr = [](std::string_view d) { write_all(2, d); };
    std::optional<core::result<exec::exec_result>> outcome;
    run_until_done(io, [&]() -> asio::awaitable<void> {
        outcome = co_await runner.run(*target, cmd, std::move(events));
        pool.close();  // done: sessions through ProxyJump keep their bridges running until closed
    });
    if (!outcome || !*outcome)
        return report(outcome ? outcome->error()
                              : core::error{core::errc::cancelled, "logs did not finish"});
    return (*outcome)->exit_code();
}

}  // namespace

void add_service_command(CLI::App& app, command_runner& run) {
    auto* service = app.add_subcommand("service", "systemd services on a host");
    service->require_subcommand(1);
    auto f = std::make_shared<logs_flags>();
    auto* logs = service->add_subcommand("logs", "Show a unit's journal (journalctl -u UNIT)");
    logs->add_option("target", f->target, "[user@]host[:port] or an ssh_config alias")->required();
    logs->add_option("unit", f->unit, "systemd unit, e.g. nginx or app.service")->required();
    logs->add_option("-n,--lines", f->lines, "Lines of history")->capture_default_str();
    logs->add_flag("-f,--follow", f->follow, "Keep printing new entries until interrupted");
    logs->add_flag("--sudo", f->sudo, "Read the journal as root through sudo -n");
    add_connection_flags(*logs, f->connection);
    logs->footer("Example:\n  tunnel service logs admin@web1 nginx -n 100 --follow");
    logs->callback([f, &run] { run = [f] { return run_logs(*f); }; });
}

}  // namespace tunnel::cli
