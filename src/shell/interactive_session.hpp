// An interactive SSH session as OpenSSH's client runs one: a session channel
// with an optional pty (TERM, window size), the login shell or one command,
// and data pumps between the channel and our stdin/stdout/stderr, all on the
// session's executor. With a pty the local terminal is in raw mode while the
// session runs (restored on every way out), SIGWINCH becomes window-change
// and the escape character (`~.`, `~?`, `~~`) is honoured after a newline.
// SIGTERM, SIGHUP, SIGINT and SIGQUIT end the session (unless ignored when we
// started, as ssh does).
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "shell/terminal_mode.hpp"
#include "ssh/session.hpp"

namespace tunnel::shell {

struct interactive_options {
    std::optional<std::string> command;  // remote command line; nullopt: the login shell
    bool pty = false;                    // send pty-req first
    std::string term = "dumb";           // TERM in the pty-req
    window_size size;                    // initial pty size
    std::optional<char> escape_char;     // honoured only with a pty; nullopt: escapes off
    bool raw_terminal = true;  // with a pty, put input_fd in raw mode when it is a terminal
    int input_fd = 0;
    int output_fd = 1;
    int error_fd = 2;
    std::size_t buffer_cap = 1 << 20;  // bytes queued per direction before we stop reading
};

struct interactive_outcome {
    std::optional<int> exit_status;          // the remote command's, when it sent one
    std::optional<std::string> exit_signal;  // "TERM", "KILL", ... when it died of a signal
    bool pty = false;                        // a pty was granted
    bool escape_disconnect = false;          // the user typed the escape character and `.`
    int local_signal = 0;                    // the signal that made us stop, if any
};

// Opens a session channel on `s`, requests the pty (when asked) and the shell
// or command, then pumps until the channel closes, the user disconnects with
// `~.`, or a stop signal arrives. The channel is closed on return; the session
// stays open for the caller. An error means the session could not start or
// the connection was lost.
[[nodiscard]] asio::awaitable<core::result<interactive_outcome>> run_interactive(
    std::shared_ptr<ssh::session> s, interactive_options options);

}  // namespace tunnel::shell
