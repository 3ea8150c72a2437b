// Runs the `tunnel` CLI binary like a user would, but hermetically: HOME is
// a fresh temp dir (so ~/.ssh is never the real one) and no ssh-agent is
// inherited unless a test passes one in.
//
//   auto sshd = sshd_fixture::start();
//   auto r = run_tunnel(exec_args(*sshd, {"--json"}, {"echo", "hi"}));
//
// The binary path is TUNNEL_BINARY, a compile definition of the test target.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "support/process.hpp"
#include "support/sshd_fixture.hpp"

namespace tunnel::test {

// The tunnel binary the tests drive: TUNNEL_BINARY where the including
// target defines it, else `tunnel` from PATH.
[[nodiscard]] inline std::string tunnel_binary() {
#ifdef TUNNEL_BINARY
    return TUNNEL_BINARY;
#else
    return "tunnel";
#endif
}

struct cli_options {
    env_change env;                         // on top of the hermetic defaults
    std::optional<std::string> stdin_text;  // nullopt: /dev/null
    std::string home;                       // empty: a fresh temp dir for this run
    std::chrono::milliseconds timeout{20'000};
};

// `tunnel ARGS...` to completion with HOME set to a temp dir and
// SSH_AUTH_SOCK/SSH_AGENT_PID/SSH_ASKPASS/DISPLAY unset (cli_options::env
// may set them again).
[[nodiscard]] run_result run_cli(const std::string& binary, std::vector<std::string> args,
                                 const cli_options& options = {});
[[nodiscard]] inline run_result run_tunnel(std::vector<std::string> args,
                                           const cli_options& options = {}) {
    return run_cli(tunnel_binary(), std::move(args), options);
}

// The same in the background; output goes to the files in `files`.
// `home` must be a directory that outlives the child.
[[nodiscard]] core::result<child_process> spawn_cli(
    const std::string& binary, std::vector<std::string> args, const std::string& home,
    const std::string& stdout_path, const std::string& stderr_path, env_change env = {});
[[nodiscard]] inline core::result<child_process> spawn_tunnel(std::vector<std::string> args,
                                                              const std::string& home,
                                                              const std::string& stdout_path,
                                                              const std::string& stderr_path,
                                                              env_change env = {}) {
    return spawn_cli(tunnel_binary(), std::move(args), home, stdout_path, stderr_path,
                     std::move(env));
}

// -F /dev/null PORT_OPTION PORT -i KEY -o UserKnownHostsFile=KNOWN_HOSTS
// -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes
// -o BatchMode=yes: a test server reached with its own key and known_hosts and
// nothing from the machine's ssh config. PORT_OPTION: "-p" (exec, forward) or
// "-P" (cp).
[[nodiscard]] std::vector<std::string> strict_client_flags(std::string_view port_option,
                                                           std::uint16_t port,
                                                           const std::string& key,
                                                           const std::string& known_hosts);

// Connection flags that reach `sshd` with its client key and known_hosts and
// nothing from the machine's ssh config: -F <empty> -p PORT -i KEY
// -o UserKnownHostsFile=... -o GlobalKnownHostsFile=/dev/null
// -o StrictHostKeyChecking=yes -o BatchMode=yes.
[[nodiscard]] std::vector<std::string> fixture_flags(const sshd_fixture& sshd);

// {"exec", fixture_flags..., extra..., "root@127.0.0.1", "--", command...}
[[nodiscard]] std::vector<std::string> exec_args(const sshd_fixture& sshd,
                                                 std::vector<std::string> extra,
                                                 std::vector<std::string> command);

}  // namespace tunnel::test
