// ProxyCommand: the SSH session runs over the stdin and stdout of a program
// (`nc -X connect -x proxy:3128 %h %p`, `cloudflared access ssh ...`,
// `tailscale nc %h %p`, `tunnel ws-connect ...`), as ssh runs it: through
// the user's shell with `exec`, stderr passed through, hung up when the
// session ends.
#pragma once

#include <string>

#include "ssh/byte_stream.hpp"

namespace tunnel::ssh {

// An opener (connect_options::open_stream) that starts `command` (tokens
// already expanded) for each session. The program gets one end of a
// socketpair as its stdin and stdout; libssh gets the other. The returned
// pump owns the process: stop() hangs it up (SIGHUP, then SIGKILL after
// 200 ms) and reaps it, and a session whose handshake fails names the
// program's exit status through why_closed().
[[nodiscard]] stream_opener proxy_command_opener(std::string command);

}  // namespace tunnel::ssh
