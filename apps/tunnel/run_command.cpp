// tunnel run -i INVENTORY [--limit PATTERN] [--forks N] -- CMD...
#include <unistd.h>

#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "commands.hpp"
#include "core/asio.hpp"
#include "core/duration.hpp"
#include "core/terminal_prompt.hpp"
#include "exec/command.hpp"
#include "exec/executor.hpp"
#include "inventory/connection.hpp"
#include "inventory/fanout.hpp"
#include "inventory/inventory.hpp"
#include "link/exec_client.hpp"

namespace tunnel::cli {

namespace {

// Exit codes: any host failed sets 1, any host unreachable sets 4 (both: 5).
constexpr int exit_host_failed = 1;
constexpr int exit_host_unreachable = 4;

struct run_flags {
    ssh::client_flags connection;
    std::string inventory_path;
    std::string limit;
    std::size_t forks = inventory::default_forks;
    std::string timeout;
    bool group_output = false;
    bool json = false;
    bool sudo = false;
    std::string sudo_user;
    std::vector<std::string> command;
};

std::string seconds(std::chrono::milliseconds d) {
    return fmt::format("{:.2f}s", static_cast<double>(d.count()) / 1000.0);
}

std::string status_detail(const inventory::host_result& r) {
    if (r.status == inventory::host_status::unreachable || r.exit_code < 0) return r.error;
    return r.error.empty() ? fmt::format("rc={}", r.exit_code)
                           : fmt::format("rc={} {}", r.exit_code, r.error);
}

nlohmann::json to_json(const inventory::host_result& r) {
    return {{"host", r.name},
            {"destination", r.destination},
            {"status", std::string(inventory::to_string(r.status))},
            {"exit_code", r.exit_code < 0 ? nlohmann::json(nullptr) : nlohmann::json(r.exit_code)},
            {"signal", r.signal ? nlohmann::json(*r.signal) : nlohmann::json(nullptr)},
            {"timed_out", r.timed_out},
            {"stdout", r.out},
            {"stderr", r.err},
            {"error", r.error.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.error)},
            {"duration_ms", r.duration.count()}};
}

void print_recap(const std::vector<inventory::host_result>& results,
                 const inventory::fanout_summary& s) {
    std::size_t width = 4;
    for (const auto& r : results) width = std::max(width, r.name.size());
    std::string out = "\nRECAP\n";
    for (const auto& r : results)
        out += fmt::format("{:<{}}  {:<11}  {:>7}  {}\n", r.name, width,
                           inventory::to_string(r.status), seconds(r.duration), status_detail(r));
    out += fmt::format("{} host(s): {} ok, {} failed, {} unreachable in {}\n", s.total(), s.ok,
                       s.failed, s.unreachable, seconds(s.duration));
    write_all(1, out);
}

int run_fanout(const run_flags& f) {
    exec::command cmd;
    cmd.argv = f.command;
    cmd.sudo = f.sudo || !f.sudo_user.empty();
    if (!f.sudo_user.empty()) cmd.sudo_user = f.sudo_user;
    if (auto v = exec::validate(cmd); !v) return report(v.error());
    inventory::fanout_options options;
    if (f.forks < 1 || f.forks > inventory::max_forks)
        return report({core::errc::invalid_argument, fmt::format("--forks {}: must be from 1 to {}",
                                                                 f.forks, inventory::max_forks)});
    options.forks = f.forks;
    if (!f.timeout.empty()) {
        auto d = core::parse_duration(f.timeout);
        if (!d) return report({core::errc::invalid_argument, "--timeout: " + d.error().message});
        if (d->count() <= 0)
            return report(
                {core::errc::invalid_argument, "--timeout: must be more than 0, e.g. 30s"});
        options.timeout = *d;
    }
    options.capture = f.json || f.group_output;

    auto inv = inventory::load_inventory(f.inventory_path);
    if (!inv) return report(inv.error());
    auto hosts = inv->select(f.limit.empty() ? "all" : f.limit);
    if (!hosts) return report(hosts.error());
    if (hosts->empty())
        return report({core::errc::not_found,
                       fmt::format("no hosts matched {} in {}: check the pattern (groups: {})",
                                   f.limit.empty() ? "all" : "--limit " + f.limit, f.inventory_path,
                                   fmt::join(inv->group_names(), ", "))});

    auto ctx = ssh::process_resolve_context();
    auto config = ssh::load_ssh_config(f.connection, ctx);
    if (!config) return report(config.error());
    std::vector<inventory::fanout_target> targets;
    std::vector<std::string>
        names;  // targets are handed to the runner; output lines need the names
    for (const auto& h : *hosts) {
        names.push_back(h.name);
        auto o = inventory::connect_options_for(h, *config, f.connection);
        if (o) o->batch_mode = true;  // never prompt from 50 hosts at once
        targets.push_back({h.name, std::move(o)});
    }

    asio::io_context io;
    pool::pool_limits limits;
    limits.max_sessions_total = std::max(limits.max_sessions_total, options.forks);
    pool::breaker_registry breakers({5, std::chrono::seconds(30)});
    pool::session_pool pool(io.get_executor(), limits);
    exec::executor runner(pool, breakers);
    // Hosts a running `tunnel up` reaches run on its warm sessions (docs/link.md).
    if (auto control = link::pooled_control_path()) {
        auto pooled = std::make_shared<link::manager_exec>(*control);
        for (const auto& t : targets)
            if (t.options) pooled->name_destination(t.options->destination(), t.name);
        runner.use_pooled(std::move(pooled));
    }

    inventory::fanout_events events;
    if (!f.json && !f.group_output) {
        events.on_line = [&names](std::size_t i, inventory::output_stream s,
                                  std::string_view line) {
            write_all(s == inventory::output_stream::out ? 1 : 2,
                      fmt::format("{} | {}\n", names[i], line));
        };
    }
    if (!f.json) {
        events.on_done = [&f](std::size_t, const inventory::host_result& r) {
            if (f.group_output) {
                std::string head =
                    fmt::format("{} | {} | {} | {} >>\n", r.name, inventory::to_string(r.status),
                                status_detail(r), seconds(r.duration));
                write_all(1, head + r.out + (r.out.empty() || r.out.back() == '\n' ? "" : "\n"));
                if (!r.err.empty()) write_all(2, r.err + (r.err.back() == '\n' ? "" : "\n"));
            } else if (r.status != inventory::host_status::ok) {
                write_all(2, fmt::format("{} | {} | {}\n", r.name, inventory::to_string(r.status),
                                         status_detail(r)));
            }
        };
    }

    const auto started = std::chrono::steady_clock::now();
    std::vector<inventory::host_result> results;
    run_until_done(io, [&]() -> asio::awaitable<void> {
        results = co_await inventory::run_on_hosts(runner, std::move(targets), cmd, options,
                                                   std::move(events));
        pool.close();  // done: sessions through ProxyJump keep their bridges running until closed
    });
    auto summary =
        inventory::summarize(results, std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::steady_clock::now() - started));

    if (f.json) {
        nlohmann::json hosts_json = nlohmann::json::array();
        for (const auto& r : results) hosts_json.push_back(to_json(r));
        nlohmann::json doc{{"command", cmd.display()},
                           {"hosts", std::move(hosts_json)},
                           {"summary",
                            {{"total", summary.total()},
                             {"ok", summary.ok},
                             {"failed", summary.failed},
                             {"unreachable", summary.unreachable},
                             {"duration_ms", summary.duration.count()}}}};
        std::cout << doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else {
        print_recap(results, summary);
    }
    return (summary.failed ? exit_host_failed : 0) |
           (summary.unreachable ? exit_host_unreachable : 0);
}

}  // namespace

void add_run_command(CLI::App& app, command_runner& run) {
    auto flags = std::make_shared<run_flags>();
    auto* cmd =
        app.add_subcommand("run", "Run a command on many hosts of an inventory in parallel");
    cmd->footer(
        "Examples:\n"
        "  tunnel run -i hosts.yml -- uptime\n"
        "  tunnel run -i hosts.ini --limit 'web:!web03' --forks 20 --timeout 30s -- 'systemctl "
        "is-active nginx'\n"
        "  tunnel run -i 'web1,deploy@10.0.0.7:2222,' --json -- uname -r\n"
        "Patterns: all, a group, a host, web*, web:db (or web,db), web:&prod, web:!db, ~regex;\n"
        "names not in the inventory are targets resolved like exec's ([user@]host[:port], "
        "ssh_config aliases).\n"
        "Exit status: 0 all ok; 1 a host failed; 4 a host was unreachable (5 both); 2 bad usage.");
    add_connection_flags(*cmd, flags->connection, /*with_short_identity=*/false);
    add_agent_flags(*cmd, flags->connection);
    cmd->add_option("-i,--inventory", flags->inventory_path,
                    "Inventory file (Ansible YAML or INI) or a comma-separated host list")
        ->required();
    cmd->add_option("--limit", flags->limit, "Host pattern selecting the hosts (default all)");
    cmd->add_option("-f,--forks", flags->forks, "Hosts to run at once (default 50)");
    cmd->add_option("--timeout", flags->timeout,
                    "Give up on a host after this long (connect + command), e.g. 30s");
    cmd->add_flag("--group-output", flags->group_output,
                  "Print each host's output in one block when it finishes");
    cmd->add_flag("--json", flags->json,
                  "Print one JSON object with every host's result and a summary");
    cmd->add_flag("--sudo", flags->sudo, "Run through sudo -n on every host");
    cmd->add_option("--sudo-user", flags->sudo_user, "Run through sudo as this user");
    cmd->add_option("command", flags->command, "Command to run (after --)")->required();
    cmd->callback([flags, &run] { run = [flags] { return run_fanout(*flags); }; });
}

}  // namespace tunnel::cli
