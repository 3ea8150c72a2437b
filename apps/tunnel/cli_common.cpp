#include "cli_common.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "core/terminal_prompt.hpp"

namespace tunnel::cli {

void add_connection_flags(CLI::App& cmd, ssh::client_flags& flags, bool with_short_identity) {
    cmd.add_option_function<uint16_t>(
           "-p,--port", [&flags](uint16_t p) { flags.port = p; },
           "Port to connect to on the remote host")
        ->check(CLI::Range(1, 65535));
    cmd.add_option_function<std::string>(
        "-l,--login", [&flags](const std::string& u) { flags.user = u; }, "User to log in as");
    cmd.add_option(with_short_identity ? "-i,--private-key" : "--private-key", flags.identity_files,
                   "Identity (private key) file; may be repeated")
        ->take_all()
        ->allow_extra_args(false);  // one value per flag: never swallow TARGET or --
    cmd.add_option_function<std::string>(
        "-F", [&flags](const std::string& f) { flags.config_file = f; },
        "ssh_config file to use instead of ~/.ssh/config");
    cmd.add_option("-o", flags.options,
                   "ssh_config option as Key=Value, e.g. -o StrictHostKeyChecking=accept-new")
        ->take_all()
        ->allow_extra_args(false);  // one value per flag: never swallow TARGET or --
}

void add_agent_flags(CLI::App& cmd, ssh::client_flags& flags) {
    cmd.add_flag_callback(
           "-A", [&flags] { flags.forward_agent = true; },
           "Forward the local ssh-agent (ForwardAgent yes): programs on the host can use your "
           "keys while you are connected, so only to hosts you trust")
        ->trigger_on_parse();
    cmd.add_flag_callback(
           "-a", [&flags] { flags.forward_agent = false; },
           "Do not forward the agent, whatever ssh_config says")
        ->trigger_on_parse();
}

int exit_code_for(const core::error& e) {
    switch (e.code) {
        case core::errc::invalid_argument:
        case core::errc::not_found:
        case core::errc::permission_denied:
        case core::errc::denied:
            return exit_usage;
        case core::errc::timeout:
            return exit_connection;
        default:
            return exit_connection;
    }
}

namespace {
std::string& stored_program_path() {
    static std::string path;
    return path;
}
}  // namespace

void set_program_path(const char* argv0) {
    if (argv0 && argv0[0] == '/') stored_program_path() = argv0;
}

namespace {
bool& declined_flag() {
    static bool declined = false;
    return declined;
}
}  // namespace

void take_front_notes() {
    if (const char* d = std::getenv("TUNNEL_MANAGER_DECLINED"); d && std::string_view(d) == "1")
        declined_flag() = true;
    ::unsetenv("TUNNEL_MANAGER_DECLINED");
}

bool manager_declined() {
    return declined_flag();
}

std::string program_path() {
    if (!stored_program_path().empty()) return stored_program_path();
    std::error_code ec;
    return std::filesystem::read_symlink("/proc/self/exe", ec).string();
}

int report(const core::error& e) {
    fmt::print(stderr, "tunnel: {}\n", e.message);
    return exit_code_for(e);
}

void write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return;  // the reader went away; keep running so the exit status is right
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
}

std::optional<std::string> ask_interactive(const ssh::interactive_prompt& p) {
    // The server's name and instruction once per round, then each prompt on
    // its own, visible or hidden as the server asked (OpenSSH's behaviour).
    if (p.first) {
        std::string heading;
        if (!p.name.empty()) heading += std::string(p.name) + "\n";
        if (!p.instruction.empty()) heading += std::string(p.instruction) + "\n";
        if (!heading.empty() && !core::tell_terminal(heading)) return std::nullopt;
    }
    if (p.echo)
        if (auto answer = core::ask_terminal(p.prompt, true)) return answer;
    return core::ask_secret(p.prompt);  // the terminal with echo off, else SSH_ASKPASS
}

core::result<ssh::connect_options> resolve_target(const ssh::client_flags& flags,
                                                  const std::string& target) {
    auto ctx = ssh::process_resolve_context();
    auto config = ssh::load_ssh_config(flags, ctx);
    if (!config) return tl::unexpected(config.error());
    auto options = ssh::resolve_destination(*config, target, flags);
    if (!options) return options;
    options->ask_secret = [](std::string_view prompt) { return core::ask_secret(prompt); };
    options->ask_interactive = ask_interactive;
    return options;
}

}  // namespace tunnel::cli
