// tunnel deploy DEPLOY.yaml -i INVENTORY [--check] [--limit PAT] [--json] [--unlock] [-e K=V|@F]...
// tunnel rollback DEPLOY.yaml -i INVENTORY [--to ID] [--limit PAT] [--json]
// tunnel releases DEPLOY.yaml -i INVENTORY [--limit PAT] [--json]
#include <pwd.h>
#include <unistd.h>

#include <ctime>
#include <iostream>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "commands.hpp"
#include "core/asio.hpp"
#include "deploy/deploy_facts.hpp"
#include "deploy/deployer.hpp"
#include "deploy/release_scripts.hpp"
#include "inventory/connection.hpp"
#include "inventory/inventory.hpp"
#include "template/variables.hpp"

namespace tunnel::cli {

namespace {

struct deploy_flags {
    ssh::client_flags connection;
    std::string file;
    std::string inventory;
    std::string limit;
    std::string to;
    std::vector<std::string> extra_vars;
    unsigned forks = 50;
    bool check = false;
    bool json = false;
    bool unlock = false;
};

// `render`: each host's `templates:` too (tunnel deploy), every host before
// any is contacted, so a missing variable stops the deploy before it starts.
core::result<std::vector<deploy::host_target>> targets_for(const deploy_flags& f,
                                                           const deploy::deploy_config& c,
                                                           bool render = false) {
    auto extra = templating::parse_extra_vars(f.extra_vars);
    if (!extra) return tl::unexpected(extra.error());
    auto inv = inventory::load_inventory(f.inventory);
    if (!inv) return tl::unexpected(inv.error());
    auto selected = inv->select("all");
    if (!selected) return tl::unexpected(selected.error());
    if (!f.limit.empty()) {
        selected = inv->limit(*selected, f.limit);
        if (!selected) return tl::unexpected(selected.error());
    }
    if (selected->empty())
        return core::fail(core::errc::invalid_argument,
                          fmt::format("no hosts selected from {}{}", f.inventory,
                                      f.limit.empty() ? "" : " with --limit " + f.limit));
    auto ctx = ssh::process_resolve_context();
    auto config = ssh::load_ssh_config(f.connection, ctx);
    if (!config) return tl::unexpected(config.error());
    std::vector<deploy::host_target> out;
    std::vector<nlohmann::json> host_vars;
    for (const auto& h : *selected) {
        auto opts = inventory::connect_options_for(h, *config, f.connection);
        if (!opts) return tl::unexpected(opts.error());
        opts->batch_mode = true;  // many hosts at once: never prompt
        const auto vars = templating::host_variables(h.name, h.vars, *extra);
        auto root = deploy::root_for_host(c, h.name, vars);
        if (!root) return tl::unexpected(root.error());
        host_vars.push_back(vars);
        out.push_back({h.name, std::move(*opts), std::move(*root), {}});
    }
    if (!render || c.templates.empty()) return out;
    // Templates that name `facts` get each host's, read (not changed) first.
    if (deploy::templates_use_facts(c)) {
        asio::io_context io;
        std::optional<core::result<std::vector<nlohmann::json>>> facts;
        run_until_done(io, [&]() -> asio::awaitable<void> {
            facts = co_await deploy::gather_facts(c, out, std::max<std::size_t>(f.forks, 1u));
        });
        if (!facts || !*facts)
            return tl::unexpected(facts ? facts->error()
                                        : core::error{core::errc::cancelled,
                                                      "reading the hosts' facts was cut short"});
        for (std::size_t i = 0; i < out.size(); ++i) host_vars[i]["facts"] = (**facts)[i];
    }
    for (std::size_t i = 0; i < out.size(); ++i) {
        auto rendered = deploy::render_templates(c, out[i].name, host_vars[i]);
        if (!rendered) return tl::unexpected(rendered.error());
        out[i].files = std::move(*rendered);
    }
    return out;
}

std::string local_user() {
    const char* u = std::getenv("USER");
    if (u && *u) return u;
    if (auto* pw = ::getpwuid(::getuid())) return pw->pw_name;
    return "unknown";
}

std::string local_host() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
    return buf;
}

std::string holder_json() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char since[32];
    std::strftime(since, sizeof since, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return nlohmann::json{
        {"user", local_user()}, {"host", local_host()}, {"pid", ::getpid()}, {"since", since}}
        .dump();
}

deploy::run_options run_options_for(const deploy_flags& f) {
    deploy::run_options o;
    o.forks = f.forks;
    o.check = f.check;
    o.user = local_user() + "@" + local_host();
    o.holder_json = holder_json();
    if (!f.json) o.on_progress = [](const std::string& line) { std::cout << line << std::endl; };
    return o;
}

void print_report(const deploy_flags& f, const deploy::deploy_report& r) {
    if (f.json)
        std::cout << deploy::to_json(r).dump(-1, ' ', false,
                                             nlohmann::json::error_handler_t::replace)
                  << "\n";
    else
        std::cout << deploy::format_recap(r) << std::flush;
}

int run_unlock(const deploy_flags& f, const deploy::deploy_config& c,
               std::vector<deploy::host_target> targets) {
    asio::io_context io;
    std::vector<deploy::host_unlock> out;
    run_until_done(io, [&]() -> asio::awaitable<void> {
        out = co_await deploy::unlock_hosts(c, std::move(targets), f.forks);
    });
    bool failed = false;
    nlohmann::json j = nlohmann::json::array();
    for (const auto& h : out) {
        failed = failed || !h.error.empty();
        std::string what = !h.error.empty() ? "error: " + h.error
                           : h.holder
                               ? "unlocked; it was held by " + deploy::describe_holder(*h.holder)
                               : "was not locked";
        if (f.json)
            j.push_back({{"host", h.name},
                         {"error", h.error},
                         {"held_by", h.holder ? deploy::describe_holder(*h.holder) : ""}});
        else
            std::cout << h.name << ": " << what << "\n";
    }
    if (f.json) std::cout << j.dump() << "\n";
    return failed ? 1 : 0;
}

int run_deploy(const deploy_flags& f) {
    auto c = deploy::load_deploy_config(f.file);
    if (!c) return report(c.error());
    auto targets = targets_for(f, *c, !f.unlock);
    if (!targets) return report(targets.error());
    if (f.unlock) return run_unlock(f, *c, std::move(*targets));
    auto a = deploy::inspect_artifact(*c);
    if (!a) return report(a.error());
    asio::io_context io;
    deploy::deploy_report r;
    auto o = run_options_for(f);
    run_until_done(io, [&]() -> asio::awaitable<void> {
        r = co_await deploy::run_deploy(*c, *a, std::move(*targets), o);
    });
    print_report(f, r);
    return r.ok() ? 0 : 1;
}

int run_rollback(const deploy_flags& f) {
    auto c = deploy::load_deploy_config(f.file);
    if (!c) return report(c.error());
    if (!f.to.empty() && !deploy::scripts::valid_release_id(f.to))
        return report({core::errc::invalid_argument,
                       "--to " + f.to + ": not a release id (see tunnel releases)"});
    auto targets = targets_for(f, *c);
    if (!targets) return report(targets.error());
    asio::io_context io;
    deploy::deploy_report r;
    auto o = run_options_for(f);
    std::optional<std::string> to;
    if (!f.to.empty()) to = f.to;
    run_until_done(io, [&]() -> asio::awaitable<void> {
        r = co_await deploy::run_rollback(*c, std::move(*targets), to, o);
    });
    print_report(f, r);
    return r.ok() ? 0 : 1;
}

int run_releases(const deploy_flags& f) {
    auto c = deploy::load_deploy_config(f.file);
    if (!c) return report(c.error());
    auto targets = targets_for(f, *c);
    if (!targets) return report(targets.error());
    asio::io_context io;
    std::vector<deploy::host_releases> out;
    run_until_done(io, [&]() -> asio::awaitable<void> {
        out = co_await deploy::list_releases(*c, std::move(*targets), f.forks);
    });
    bool failed = false;
    nlohmann::json j = nlohmann::json::array();
    for (const auto& h : out) {
        failed = failed || !h.error.empty();
        if (f.json)
            j.push_back({{"host", h.name},
                         {"error", h.error},
                         {"current", h.state.current},
                         {"previous", h.state.previous},
                         {"releases", h.state.releases},
                         {"slots", h.state.slots},
                         {"live_slot", h.state.live_slot},
                         {"log", h.state.log}});
        else
            std::cout << deploy::format_releases(h);
    }
    if (f.json)
        std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return failed ? 1 : 0;
}

CLI::App* add_common(CLI::App& app, const char* name, const char* help, deploy_flags& f) {
    auto* cmd = app.add_subcommand(name, help);
    cmd->add_option("deploy_file", f.file, "Deploy file (deploy.yaml)")->required();
    cmd->add_option("-i,--inventory", f.inventory,
                    "Inventory (YAML or INI file, or a comma-separated host list)")
        ->required();
    cmd->add_option("--limit", f.limit, "Only hosts matching this pattern (web, 'db*', ...)");
    cmd->add_option("--forks", f.forks, "Hosts worked on at once (within a batch)")
        ->check(CLI::Range(1, 1000))
        ->capture_default_str();
    cmd->add_flag("--json", f.json, "No progress lines; one JSON document at the end");
    cmd->add_option("-e,--extra-vars", f.extra_vars,
                    "Variables over the inventory's (root, templates): NAME=VALUE or @FILE "
                    "(YAML/JSON); repeatable")
        ->take_all()
        ->allow_extra_args(false);
    add_connection_flags(*cmd, f.connection, false);
    return cmd;
}

}  // namespace

void add_deploy_command(CLI::App& app, command_runner& run) {
    auto f = std::make_shared<deploy_flags>();
    auto* cmd = add_common(
        app, "deploy",
        "Ship a release to inventory hosts (rolling, canary, recreate or blue_green) with "
        "health checks and automatic rollback",
        *f);
    cmd->add_flag("--check", f->check, "Change nothing; show each host's release and the batches");
    cmd->add_flag("--unlock", f->unlock,
                  "Remove the deploy lock on the hosts and show who held it since when");
    cmd->footer(
        "Example:\n  tunnel deploy deploy.yaml -i hosts.ini --limit web\n"
        "Exit status: 0 every host deployed, 1 a host failed or was rolled back, 2 bad input.");
    cmd->callback([f, &run] { run = [f] { return run_deploy(*f); }; });
}

void add_rollback_command(CLI::App& app, command_runner& run) {
    auto f = std::make_shared<deploy_flags>();
    auto* cmd =
        add_common(app, "rollback", "Switch hosts back to the previous release (or --to ID)", *f);
    cmd->add_option("--to", f->to, "Release id to switch to (see tunnel releases)");
    cmd->footer("Example:\n  tunnel rollback deploy.yaml -i hosts.ini --to 20261206-160512-123");
    cmd->callback([f, &run] { run = [f] { return run_rollback(*f); }; });
}

void add_releases_command(CLI::App& app, command_runner& run) {
    auto f = std::make_shared<deploy_flags>();
    auto* cmd =
        add_common(app, "releases", "List each host's releases, the current one marked *", *f);
    cmd->footer("Example:\n  tunnel releases deploy.yaml -i hosts.ini");
    cmd->callback([f, &run] { run = [f] { return run_releases(*f); }; });
}

}  // namespace tunnel::cli
