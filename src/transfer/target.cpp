#include "transfer/target.hpp"

#include <fmt/format.h>

#include "core/terminal_prompt.hpp"

namespace tunnel::transfer {

core::result<ssh::connect_options> resolve_target(const ssh::client_flags& flags,
                                                  std::string_view host_text) {
    auto ctx = ssh::process_resolve_context();
    auto config = ssh::load_ssh_config(flags, ctx);
    if (!config) return tl::unexpected(config.error());
    auto target = ssh::resolve_destination(*config, host_text, flags);
    if (!target) return tl::unexpected(target.error());
    target->ask_secret = [](std::string_view prompt) { return core::ask_secret(prompt); };
    return target;
}

core::result<std::uint32_t> parse_mode(std::string_view text) {
    std::uint32_t v = 0;
    if (text.empty() || text.size() > 5) goto bad;
    for (char ch : text) {
        if (ch < '0' || ch > '7') goto bad;
        v = v * 8 + static_cast<std::uint32_t>(ch - '0');
    }
    if (v > 07777) goto bad;
    return v;
bad:
    return core::fail(
        core::errc::invalid_argument,
        fmt::format("--mode \"{}\": expected octal permission bits such as 0644 or 750", text));
}

nlohmann::json summary_json(const transfer_stats& stats, std::uint64_t bytes, double seconds) {
    double mib = static_cast<double>(bytes) / (1024.0 * 1024.0);
    return {{"files", stats.files},
            {"bytes", bytes},
            {"skipped", stats.skipped},
            {"failed", stats.failed},
            {"deleted", stats.deleted},
            {"dirs", stats.dirs},
            {"links", stats.links},
            {"seconds", seconds},
            {"mib_per_s", seconds > 0 ? mib / seconds : 0.0},
            {"errors", stats.errors}};
}

}  // namespace tunnel::transfer
