// The `exec:` section of tunnel's client config file
// (~/.config/tunnel/config.yaml, or $TUNNEL_CONFIG):
//
//   exec:
//     rules: ["deny:rm -rf *", "allow:systemctl status *"]
//     retries: 2
//     timeout: 5m
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "core/error.hpp"
#include "exec/command_rules.hpp"

namespace tunnel::exec {

struct exec_config {
    command_rules rules;
    std::optional<unsigned> retries;
    std::optional<std::chrono::milliseconds> timeout;
};

// Parses a whole config document; sections other than `exec` are left to their components.
[[nodiscard]] core::result<exec_config> parse_exec_config(std::string_view yaml_text,
                                                          const std::string& source);

// Loads the user's config file: $TUNNEL_CONFIG if set (must exist), else
// ~/.config/tunnel/config.yaml if it exists, else defaults.
[[nodiscard]] core::result<exec_config> load_exec_config(const std::string& home);

}  // namespace tunnel::exec
