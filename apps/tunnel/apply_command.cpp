// tunnel apply PLAN.yaml -i INVENTORY [--check] [--diff] [--limit PAT] [--forks N] [--fail-fast]
// [--json] [-e KEY=VALUE|@FILE]...
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "commands.hpp"
#include "core/asio.hpp"
#include "core/terminal_prompt.hpp"
#include "exec/executor.hpp"
#include "inventory/connection.hpp"
#include "inventory/inventory.hpp"
#include "ops/runner.hpp"
#include "template/variables.hpp"

namespace tunnel::cli {

namespace {

struct apply_flags {
    ssh::client_flags connection;
    std::string plan_file;
    std::string inventory;
    std::string limit;
    std::vector<std::string> extra_vars;
    unsigned forks = 50;
    bool check = false;
    bool diff = false;
    bool fail_fast = false;
    bool json = false;
};

int run_apply(const apply_flags& f) {
    auto extra = templating::parse_extra_vars(f.extra_vars);
    if (!extra) return report(extra.error());
    auto p = ops::load_plan(f.plan_file);
    if (!p) return report(p.error());
    auto inv = inventory::load_inventory(f.inventory);
    if (!inv) return report(inv.error());
    auto selected = inv->select("all");
    if (!selected) return report(selected.error());
    if (!f.limit.empty()) {
        selected = inv->limit(*selected, f.limit);
        if (!selected) return report(selected.error());
    }
    std::vector<std::string> names;
    for (const auto& h : *selected) names.push_back(h.name);
    auto per_host = ops::steps_for_hosts(
        *p, names, [&](std::string_view pattern) -> core::result<std::vector<std::string>> {
            auto hs = inv->select(pattern, inventory::unknown_names::error);
            if (!hs) return tl::unexpected(hs.error());
            std::vector<std::string> out;
            for (const auto& h : *hs) out.push_back(h.name);
            return out;
        });
    if (!per_host) return report(per_host.error());

    auto ctx = ssh::process_resolve_context();
    auto config = ssh::load_ssh_config(f.connection, ctx);
    if (!config) return report(config.error());
    std::vector<ops::plan_host> hosts;
    for (std::size_t i = 0; i < selected->size(); ++i) {
        auto opts = inventory::connect_options_for((*selected)[i], *config, f.connection);
        if (!opts) return report(opts.error());
        opts->batch_mode = true;  // many hosts at once: never prompt
        const auto& h = (*selected)[i];
        hosts.push_back({h.name, std::move(*opts), (*per_host)[i],
                         templating::host_variables(h.name, h.vars, *extra)});
    }

    asio::io_context io;
    pool::session_pool pool(io.get_executor());
    pool::breaker_registry breakers({5, std::chrono::seconds(30)});
    exec::executor runner(pool, breakers);
    nlohmann::json steps = nlohmann::json::array();
    ops::apply_options options;
    options.check = f.check;
    options.fail_fast = f.fail_fast;
    ops::plan_runner plan_runner(runner, *p, options, [&](const ops::step_report& r) {
        if (f.json)
            steps.push_back(ops::to_json(r));
        else
            std::cout << ops::format_report(r, f.check, f.diff) << std::flush;
    });
    std::vector<ops::host_recap> recaps;
    run_until_done(io, [&]() -> asio::awaitable<void> {
        recaps = co_await ops::run_hosts(plan_runner, std::move(hosts), f.forks);
        pool.close();  // done: sessions through ProxyJump keep their bridges running until closed
    });

    bool failed = false, unreachable = false;
    for (const auto& r : recaps) {
        failed = failed || r.failed > 0;
        unreachable = unreachable || r.unreachable > 0;
    }
    if (f.json) {
        nlohmann::json recap = nlohmann::json::object();
        for (const auto& r : recaps) recap[r.host] = ops::to_json(r);
        std::cout << nlohmann::json{{"plan", f.plan_file},
                                    {"check", f.check},
                                    {"steps", steps},
                                    {"recap", recap}}
                         .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                  << "\n";
    } else {
        std::size_t width = 0;
        for (const auto& r : recaps) width = std::max(width, r.host.size());
        std::cout << "\nRECAP" << (f.check ? " (check mode: nothing was changed)" : "") << "\n";
        for (const auto& r : recaps) std::cout << ops::format_recap(r, width) << "\n";
    }
    if (failed) return 1;
    if (unreachable) return 4;
    return 0;
}

}  // namespace

void add_apply_command(CLI::App& app, command_runner& run) {
    auto f = std::make_shared<apply_flags>();
    auto* cmd = app.add_subcommand(
        "apply", "Apply a plan (YAML steps) to inventory hosts; reports what changed");
    cmd->add_option("plan", f->plan_file, "Plan file (YAML list of steps)")->required();
    cmd->add_option("-i,--inventory", f->inventory,
                    "Inventory (YAML or INI file, or a comma-separated host list)")
        ->required();
    cmd->add_flag("--check", f->check, "Change nothing; report what would change");
    cmd->add_flag("--diff", f->diff, "Show file differences");
    cmd->add_option("--limit", f->limit,
                    "Only hosts matching this pattern (web, web:&prod, 'db*', ...)");
    cmd->add_option("--forks", f->forks, "Hosts worked on at once")
        ->check(CLI::Range(1, 1000))
        ->capture_default_str();
    cmd->add_option("-e,--extra-vars", f->extra_vars,
                    "Template variables over the inventory's: NAME=VALUE or @FILE (YAML/JSON); "
                    "repeatable")
        ->take_all()
        ->allow_extra_args(false);
    cmd->add_flag("--fail-fast", f->fail_fast, "Stop every host after the first failed step");
    cmd->add_flag("--json", f->json, "One JSON document: every step's result and the recap");
    add_connection_flags(*cmd, f->connection, false);
    cmd->footer(
        "Example:\n  tunnel apply site.yaml -i hosts.ini --limit web --check --diff\n"
        "Exit status: 0 all ok, 1 a step failed, 4 a host was unreachable, 2 bad input.");
    cmd->callback([f, &run] { run = [f] { return run_apply(*f); }; });
}

}  // namespace tunnel::cli
