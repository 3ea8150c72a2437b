// Turns what the user typed (TARGET, -l, -p, -i, -F, -o) into connect_options,
// resolving the target and each ProxyJump hop through ssh_config like ssh does.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "ssh/connect_options.hpp"
#include "ssh/ssh_config.hpp"

namespace tunnel::ssh {

struct client_flags {
    std::optional<std::string> user;          // -l
    std::optional<uint16_t> port;             // -p
    std::vector<std::string> identity_files;  // -i / --private-key, in order
    std::optional<std::string> config_file;   // -F (replaces ~/.ssh/config and the system file)
    std::vector<std::string> options;         // -o Key=Value
    // -A (true) / -a (false): beat ForwardAgent for the target (never for
    // ProxyJump hops). With -A, a socket path from ForwardAgent still applies.
    std::optional<bool> forward_agent;
};

// The resolve context of this process: $HOME (or the passwd entry), the login name, the host name.
[[nodiscard]] resolve_context process_resolve_context();

// Loads ssh_config per `flags` (-F, else ~/.ssh/config then /etc/ssh/ssh_config) with -o applied.
[[nodiscard]] core::result<ssh_config> load_ssh_config(const client_flags& flags,
                                                       const resolve_context& ctx);

// Resolves TARGET ([user@]host[:port] or an ssh_config alias) into options
// ready for session::connect. Explicit -i files are checked here: missing,
// unreadable or group/world-accessible keys are refused before anything is sent.
[[nodiscard]] core::result<connect_options> resolve_destination(const ssh_config& config,
                                                                std::string_view target_text,
                                                                const client_flags& flags);

// An explicit identity file must exist, be readable and be private (0600-like).
[[nodiscard]] core::result<void> check_identity_file(const std::string& path);

}  // namespace tunnel::ssh
