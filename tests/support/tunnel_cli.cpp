#include "support/tunnel_cli.hpp"

#include <utility>

namespace tunnel::test {

namespace {

env_change hermetic_env(const std::string& home, env_change extra) {
    env_change env;
    env.set.emplace_back("HOME", home);
    env.unset = {"SSH_AUTH_SOCK", "SSH_AGENT_PID", "SSH_ASKPASS", "SSH_ASKPASS_REQUIRE", "DISPLAY"};
    for (auto& kv : extra.set) {
        std::erase(env.unset, kv.first);
        env.set.push_back(std::move(kv));
    }
    for (auto& name : extra.unset) env.unset.push_back(std::move(name));
    return env;
}

}  // namespace

run_result run_cli(const std::string& binary, std::vector<std::string> args,
                   const cli_options& options) {
    std::optional<temp_dir> own_home;
    std::string home = options.home;
    if (home.empty()) {
        auto dir = temp_dir::create("tunnel-home");
        if (!dir) {
            run_result failed;
            failed.err = "cannot create a temp HOME: " + dir.error().message;
            return failed;
        }
        own_home.emplace(std::move(*dir));
        home = own_home->path();
    }
    args.insert(args.begin(), binary);
    run_options ro;
    ro.env = hermetic_env(home, options.env);
    ro.stdin_text = options.stdin_text;
    ro.timeout = options.timeout;
    return run(std::move(args), ro);
}

core::result<child_process> spawn_cli(const std::string& binary, std::vector<std::string> args,
                                      const std::string& home, const std::string& stdout_path,
                                      const std::string& stderr_path, env_change env) {
    args.insert(args.begin(), binary);
    spawn_options so;
    so.env = hermetic_env(home, std::move(env));
    so.stdout_path = stdout_path;
    so.stderr_path = stderr_path;
    return spawn(std::move(args), so);
}

std::vector<std::string> strict_client_flags(std::string_view port_option, std::uint16_t port,
                                             const std::string& key,
                                             const std::string& known_hosts) {
    return {"-F",
            "/dev/null",
            std::string(port_option),
            std::to_string(port),
            "-i",
            key,
            "-o",
            "UserKnownHostsFile=" + known_hosts,
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes"};
}

std::vector<std::string> fixture_flags(const sshd_fixture& sshd) {
    return strict_client_flags("-p", sshd.port(), sshd.client_key_path(), sshd.known_hosts_path());
}

std::vector<std::string> exec_args(const sshd_fixture& sshd, std::vector<std::string> extra,
                                   std::vector<std::string> command) {
    std::vector<std::string> args = {"exec"};
    auto flags = fixture_flags(sshd);
    args.insert(args.end(), flags.begin(), flags.end());
    args.insert(args.end(), extra.begin(), extra.end());
    args.emplace_back("root@127.0.0.1");
    args.emplace_back("--");
    args.insert(args.end(), command.begin(), command.end());
    return args;
}

}  // namespace tunnel::test
