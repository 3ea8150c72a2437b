// tunnel health -i INVENTORY [--limit PAT] [--json] [--watch [INTERVAL]]
//                [--status-addr HOST:PORT] [--thresholds FILE]
#include <csignal>
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "commands.hpp"
#include "core/asio.hpp"
#include "core/duration.hpp"
#include "core/utc_time.hpp"
#include "exec/executor.hpp"
#include "health/health_probe.hpp"
#include "health/health_report.hpp"
#include "health/status_endpoints.hpp"
#include "health/thresholds.hpp"
#include "inventory/connection.hpp"
#include "inventory/fanout.hpp"
#include "inventory/inventory.hpp"

namespace tunnel::cli {

namespace {

struct health_flags {
    ssh::client_flags connection;
    std::string inventory_path;
    std::string limit;
    std::size_t forks = inventory::default_forks;
    std::string timeout = "20s";
    std::string thresholds_path;
    std::string watch;  // the interval when --watch is given
    bool watching = false;
    std::string status_addr;
    std::string status_token_file;
    bool json = false;
};

core::result<std::chrono::milliseconds> positive_duration(const std::string& flag,
                                                          const std::string& text) {
    auto d = core::parse_duration(text);
    if (!d) return core::fail(core::errc::invalid_argument, flag + ": " + d.error().message);
    if (d->count() <= 0)
        return core::fail(core::errc::invalid_argument,
                          fmt::format("{} {}: must be more than 0, e.g. 10s", flag, text));
    return *d;
}

core::result<std::vector<health::probe_target>> targets_for(const health_flags& f) {
    auto inv = inventory::load_inventory(f.inventory_path);
    if (!inv) return tl::unexpected(inv.error());
    auto hosts = inv->select(f.limit.empty() ? "all" : f.limit);
    if (!hosts) return tl::unexpected(hosts.error());
    if (hosts->empty())
        return core::fail(core::errc::not_found,
                          fmt::format("no hosts matched {} in {}: check the pattern (groups: {})",
                                      f.limit.empty() ? "all" : "--limit " + f.limit,
                                      f.inventory_path, fmt::join(inv->group_names(), ", ")));
    auto ctx = ssh::process_resolve_context();
    auto config = ssh::load_ssh_config(f.connection, ctx);
    if (!config) return tl::unexpected(config.error());
    std::vector<health::probe_target> out;
    for (const auto& h : *hosts) {
        auto o = inventory::connect_options_for(h, *config, f.connection);
        if (o) o->batch_mode = true;  // never prompt from many hosts at once
        out.push_back({h.name, std::move(o)});
    }
    return out;
}

int run_health(const health_flags& f) {
    if (f.forks < 1 || f.forks > inventory::max_forks)
        return report({core::errc::invalid_argument, fmt::format("--forks {}: must be from 1 to {}",
                                                                 f.forks, inventory::max_forks)});
    auto timeout = positive_duration("--timeout", f.timeout);
    if (!timeout) return report(timeout.error());
    std::chrono::milliseconds interval{0};
    if (f.watching) {
        auto i = positive_duration("--watch", f.watch.empty() ? "10s" : f.watch);
        if (!i) return report(i.error());
        interval = *i;
    }
    if (f.status_addr.empty() && !f.status_token_file.empty())
        return report({core::errc::invalid_argument,
                       "--status-token-file goes with --status-addr HOST:PORT"});
    if (!f.status_addr.empty() && !f.watching)
        return report({core::errc::invalid_argument,
                       "--status-addr serves the metrics while watching: add --watch [INTERVAL]"});
    health::thresholds limits;
    if (!f.thresholds_path.empty()) {
        auto t = health::load_thresholds(f.thresholds_path);
        if (!t) return report(t.error());
        limits = *t;
    }
    auto targets = targets_for(f);
    if (!targets) return report(targets.error());

    asio::io_context io;
    pool::pool_limits pool_limits;
    pool_limits.max_sessions_total = std::max(pool_limits.max_sessions_total, f.forks);
    pool::breaker_registry breakers({5, std::chrono::seconds(30)});
    pool::session_pool pool(io.get_executor(), pool_limits);
    exec::executor runner(pool, breakers);

    auto latest = std::make_shared<health::latest_round>();
    latest->metrics = health::prometheus_text({}, 0);
    std::shared_ptr<observe::admin_http_server> server;
    if (!f.status_addr.empty()) {
        auto s = health::open_status_server(io.get_executor(), f.status_addr, f.status_token_file,
                                            latest);
        if (!s) return report(s.error());
        server = *s;
        server->start();
        fmt::print(stderr, "tunnel health: metrics on http://{}:{}/metrics\n",
                   f.status_addr.substr(0, f.status_addr.rfind(':')), server->port());
    }

    bool stopping = false;
    int code = 0;
    asio::steady_timer pause(io);
    asio::signal_set signals(io, SIGINT, SIGTERM);
    bool in_round = false;
    signals.async_wait([&](boost::system::error_code ec, int sig) {
        if (ec) return;
        if (in_round) {
            // A connect or probe in flight cannot be cancelled half way (the
            // pool has no cancellation): die of the signal as a shell command
            // does; everything printed so far was written already.
            std::signal(sig, SIG_DFL);
            std::raise(sig);
        }
        stopping = true;
        pause.cancel();
    });
    health::probe_options options{f.forks, *timeout};
    run_until_done(io, [&]() -> asio::awaitable<void> {
        for (;;) {
            in_round = true;
            auto reports = co_await health::probe_hosts(runner, *targets, limits, options);
            in_round = false;
            ++latest->rounds;
            auto doc = health::to_json(reports, limits);
            if (f.watching) {
                doc["round"] = latest->rounds;
                doc["time"] = core::utc_iso8601(std::chrono::system_clock::now());
            }
            latest->json = doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
            latest->metrics = health::prometheus_text(reports, latest->rounds);
            code = health::exit_code(reports);
            if (f.json) {
                write_all(1, latest->json + "\n");
            } else {
                std::string head = f.watching ? fmt::format("== round {} at {}\n", latest->rounds,
                                                            doc["time"].get<std::string>())
                                              : "";
                write_all(1, head + health::format_text(reports));
            }
            if (!f.watching) break;
            pause.expires_after(interval);
            boost::system::error_code ec;
            co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            if (stopping) break;
        }
        signals.cancel();
        if (server) server->close();
        pool.close();
    });
    return code;
}

}  // namespace

void add_health_command(CLI::App& app, command_runner& run) {
    auto flags = std::make_shared<health_flags>();
    auto* cmd = app.add_subcommand(
        "health",
        "Read load, memory, disks, failed units and clock skew of inventory hosts; exit non-zero "
        "on a breached threshold");
    cmd->footer(
        "Examples:\n"
        "  tunnel health -i hosts.yml\n"
        "  tunnel health -i hosts.yml --limit web --thresholds health.yml --json\n"
        "  tunnel health -i hosts.yml --watch 30s --status-addr 127.0.0.1:9101\n"
        "Thresholds (defaults): load_per_cpu 2.0 (5-min load / CPUs), memory_available_min 10 "
        "(%),\n  disk_used_max 90 (%), failed_units_max 0, clock_skew_max 1s. See docs/health.md.\n"
        "Exit status: 0 all healthy; 1 a threshold breached or a host answered nonsense; 4 a host "
        "was\nunreachable (5 both); 2 bad usage. SIGINT between --watch rounds exits with the last "
        "round's\nstatus; during a round the process dies of the signal (130 in a shell).");
    add_connection_flags(*cmd, flags->connection, /*with_short_identity=*/false);
    cmd->add_option("-i,--inventory", flags->inventory_path,
                    "Inventory file (Ansible YAML or INI) or a comma-separated host list")
        ->required();
    cmd->add_option("--limit", flags->limit, "Host pattern selecting the hosts (default all)");
    cmd->add_option("-f,--forks", flags->forks, "Hosts to probe at once (default 50)");
    cmd->add_option("--timeout", flags->timeout,
                    "Give up on a host after this long (connect + probe)")
        ->capture_default_str();
    cmd->add_option("--thresholds", flags->thresholds_path,
                    "YAML file overriding the default thresholds (docs/health.md)");
    cmd->add_flag("--json", flags->json, "Print one JSON document per round");
    cmd->add_option("--watch", flags->watch,
                    "Probe again every INTERVAL (default 10s) until Ctrl-C")
        ->expected(0, 1);
    cmd->add_option("--status-addr", flags->status_addr,
                    "With --watch: serve /metrics (Prometheus), /status (JSON) and /healthz on "
                    "HOST:PORT, e.g. 127.0.0.1:9101 (off loopback --status-token-file is "
                    "required)");
    cmd->add_option("--status-token-file", flags->status_token_file,
                    "Bearer token the status endpoints require (a file of at least 16 characters)");
    cmd->callback([flags, cmd, &run] {
        flags->watching = cmd->count("--watch") > 0;
        run = [flags] { return run_health(*flags); };
    });
}

}  // namespace tunnel::cli
