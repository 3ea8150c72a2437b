// tunnel audit-host [opts] TARGET [--sudo] [--json]
#include <iostream>

#include <fmt/format.h>

#include "cli_common.hpp"
#include "commands.hpp"
#include "core/terminal_prompt.hpp"
#include "exec/executor.hpp"
#include "ops/audit.hpp"

namespace tunnel::cli {

namespace {

struct audit_flags {
    ssh::client_flags connection;
    std::string target;
    bool sudo = false;
    bool json = false;
};

int run_audit_host(const audit_flags& f) {
    auto target = resolve_target(f.connection, f.target);
    if (!target) return report(target.error());

    asio::io_context io;
    pool::session_pool pool(io.get_executor());
    pool::breaker_registry breakers({5, std::chrono::seconds(30)});
    exec::executor runner(pool, breakers);
    exec::command cmd;
    cmd.argv = {"sh", "-c", ops::audit_script()};
    cmd.sudo = f.sudo;
    exec::run_options options;
    options.capture = true;
    std::optional<core::result<exec::exec_result>> outcome;
    run_until_done(io, [&]() -> asio::awaitable<void> {
        outcome = co_await runner.run(*target, cmd, {}, std::move(options));
        pool.close();  // done: sessions through ProxyJump keep their bridges running until closed
    });
    if (!outcome || !*outcome)
        return report(outcome ? outcome->error()
                              : core::error{core::errc::cancelled, "audit did not finish"});
    auto r = ops::evaluate_audit((*outcome)->out, target->port);
    if (!r) return report(r.error());
    if (f.json) {
        auto j = ops::to_json(*r);
        j["target"] = target->destination();
        std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else {
        std::cout << ops::format_audit(*r, target->destination());
    }
    return r->count(ops::verdict::fail) > 0 ? 1 : 0;
}

}  // namespace

void add_audit_host_command(CLI::App& app, command_runner& run) {
    auto f = std::make_shared<audit_flags>();
    auto* cmd = app.add_subcommand(
        "audit-host", "Audit a host's security settings (read-only): pass/warn/fail per check");
    cmd->add_option("target", f->target, "[user@]host[:port] or an ssh_config alias")->required();
    cmd->add_flag("--sudo", f->sudo,
                  "Read as root through sudo -n (sshd -T, /etc/shadow, firewall rules)");
    cmd->add_flag("--json", f->json, "One JSON document with every check and a summary");
    add_connection_flags(*cmd, f->connection);
    cmd->footer(
        "Example:\n  tunnel audit-host admin@web1 --sudo --json\n"
        "Exit status: 0 no check failed, 1 at least one failed, 255 connection error.");
    cmd->callback([f, &run] { run = [f] { return run_audit_host(*f); }; });
}

}  // namespace tunnel::cli
