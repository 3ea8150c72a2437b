// Shared by the transfer subcommands: turning `[user@]host` plus flags into
// connect options, octal modes, and the --json summary.
#pragma once

#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "ssh/destination.hpp"
#include "transfer/progress.hpp"

namespace tunnel::transfer {

// Resolves `host_text` through ssh_config and the flags like `tunnel exec`,
// with password/passphrase prompts on the terminal.
[[nodiscard]] core::result<ssh::connect_options> resolve_target(const ssh::client_flags& flags,
                                                                std::string_view host_text);

// "0640", "640", "755": permission bits (at most 07777).
[[nodiscard]] core::result<std::uint32_t> parse_mode(std::string_view text);

// {"files","bytes","skipped","failed","deleted","seconds","mib_per_s","errors"}
[[nodiscard]] nlohmann::json summary_json(const transfer_stats& stats, std::uint64_t bytes,
                                          double seconds);

}  // namespace tunnel::transfer
