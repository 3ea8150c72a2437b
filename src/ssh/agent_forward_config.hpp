// The values behind agent forwarding that need no connection: ForwardAgent
// as ssh_config spells it, and the local agent socket it names. Kept apart
// from ssh/agent_forward.hpp (asio, channels) so ssh_config can use it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace tunnel::ssh {

// A ForwardAgent value as OpenSSH reads it: yes/true -> "yes", no/false ->
// nullopt, `$NAME` or `${NAME}` (an environment variable), or a socket path
// (returned as written; ssh_config expands its tokens).
[[nodiscard]] core::result<std::optional<std::string>> parse_forward_agent(std::string_view value);

// The local agent socket that `forward_agent` (connect_options) names: the
// path itself, or the value of `$NAME` / `${NAME}`. Fails with
// errc::not_found naming what is missing (an unset variable, a path that does
// not exist or is not a socket) and how to fix it.
[[nodiscard]] core::result<std::string> agent_socket_to_forward(const std::string& spec);

}  // namespace tunnel::ssh
