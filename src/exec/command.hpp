// What to run on a remote host, and how that becomes the one command string
// an SSH `exec` request carries.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace tunnel::exec {

struct command {
    // One element: a shell string, run as written ("ls -l | wc -l").
    // Several: an argv, each word quoted so it arrives intact.
    std::vector<std::string> argv;
    bool sudo = false;
    std::optional<std::string> sudo_user;  // implies sudo
    bool sudo_password = false;            // answer sudo's prompt (else sudo -n: fail fast)
    std::vector<std::pair<std::string, std::string>> env;
    std::optional<std::string> cwd;
    bool pty = false;
    int pty_columns = 80;  // terminal size to request with the pty
    int pty_rows = 24;
    std::optional<std::chrono::milliseconds> timeout;

    // The command as the user wrote it (for rules, logs and messages).
    [[nodiscard]] std::string display() const;
};

// Rejects empty commands, bad env names, NUL bytes and similar before anything is sent.
[[nodiscard]] core::result<void> validate(const command& cmd);

// Markers used when a sudo password is supplied: sudo prints `prompt` on
// stderr when it wants the password; the wrapped shell prints `ready` on
// stderr once sudo has let it run. Both are stripped from the output.
struct sudo_markers {
    std::string prompt;
    std::string ready;
};

// Builds the remote command string. Env vars are set with `env` inside sudo
// (so they work whatever sshd's AcceptEnv says and survive sudo's env reset),
// the working directory with `cd` in a POSIX sh, the timeout with coreutils
// `timeout`, which kills the command's whole process group on the host.
[[nodiscard]] std::string remote_command(const command& cmd, const sudo_markers* markers = nullptr);

// Extra time the local deadline allows beyond the remote `timeout` for the
// host to report the kill before we cut the channel ourselves.
inline constexpr std::chrono::seconds timeout_grace{3};
// Time `timeout` waits after TERM before it sends KILL.
inline constexpr std::chrono::seconds timeout_kill_after{2};

}  // namespace tunnel::exec
