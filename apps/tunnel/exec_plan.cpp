#include "exec_plan.hpp"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "exec/command_rules.hpp"
#include "exec/exec_config.hpp"
#include "exec_flags.hpp"
#include "link/link_config.hpp"

namespace tunnel::cli {

namespace {

core::error refuse(std::string why) {
    return {core::errc::invalid_argument, std::move(why)};
}

std::optional<std::string> env_of(const link::control_request& req, const std::string& name) {
    auto v = req.env.find(name);
    if (v == req.env.end()) return std::nullopt;
    return v->second;
}

std::optional<std::string> own_env(const char* name) {
    const char* v = std::getenv(name);
    if (!v) return std::nullopt;
    return std::string(v);
}

// The caller's view of ssh_config: its HOME and environment, our user.
ssh::resolve_context caller_context(const link::control_request& req) {
    auto ctx = ssh::process_resolve_context();
    if (auto home = env_of(req, "HOME"); home && !home->empty()) ctx.home = *home;
    auto env = std::make_shared<std::map<std::string, std::string>>(req.env);
    ctx.getenv = [env](const std::string& name) -> std::optional<std::string> {
        auto v = env->find(name);
        if (v == env->end()) return std::nullopt;
        return v->second;
    };
    return ctx;
}

bool relative(const std::optional<std::string>& path) {
    return path && !path->empty() && path->front() != '/' && path->front() != '~';
}

}  // namespace

core::result<link::exec_plan> plan_pooled_exec(const link::control_request& req) {
    exec_flags f;
    CLI::App app{"", "exec"};
    add_exec_options(app, f);
    std::vector<std::string> words(req.args.rbegin(),
                                   req.args.rend());  // CLI11 takes them reversed
    try {
        app.parse(words);
    } catch (const CLI::Error& e) {
        return tl::unexpected(
            refuse(fmt::format("the command line does not parse here: {}", e.what())));
    }
    if (f.pty || f.json || f.ask_sudo_pass || f.sudo || !f.sudo_user.empty() ||
        !f.stdin_path.empty() || !f.timeout.empty() || f.connection.forward_agent.value_or(false))
        return tl::unexpected(refuse("a flag the pooled path leaves to the CLI"));
    // Files this process would read for the caller: the same ones, or refuse.
    std::error_code ec;
    const auto here = std::filesystem::current_path(ec);
    if (relative(f.connection.config_file) && (ec || here != req.cwd))
        return tl::unexpected(refuse("-F names a relative path"));
    if (env_of(req, "TUNNEL_CONFIG") != own_env("TUNNEL_CONFIG") ||
        relative(own_env("TUNNEL_CONFIG")))
        return tl::unexpected(refuse("TUNNEL_CONFIG differs from the manager's"));

    auto cmd = build_command(f);
    if (!cmd) return tl::unexpected(cmd.error());
    const auto ctx = caller_context(req);
    auto settings = exec::load_exec_config(ctx.home);
    if (!settings) return tl::unexpected(settings.error());
    if (settings->timeout) return tl::unexpected(refuse("a default timeout in the config file"));
    auto rules = exec::command_rules::parse(f.rules);
    if (!rules) return tl::unexpected(rules.error());
    for (const auto& r : settings->rules.rules()) rules->add(r);
    if (auto allowed =
            cmd->argv.size() == 1 ? rules->check(cmd->argv.front()) : rules->check(cmd->argv);
        !allowed)
        return tl::unexpected(allowed.error());

    auto config = ssh::load_ssh_config(f.connection, ctx);
    if (!config) return tl::unexpected(config.error());
    auto target = ssh::resolve_destination(*config, f.target, f.connection);
    if (!target) return tl::unexpected(target.error());
    if (target->forward_agent) return tl::unexpected(refuse("ForwardAgent is on for the target"));

    link::exec_plan plan;
    if (link::valid_link_name(f.target)) plan.link = f.target;
    plan.destination = target->destination();
    plan.command = exec::remote_command(*cmd);
    return plan;
}

}  // namespace tunnel::cli
