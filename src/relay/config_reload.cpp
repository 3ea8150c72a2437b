#include "relay/config_reload.hpp"

#include <map>

#include <fmt/format.h>

#include "relay/relay_state.hpp"
#include "relay/visitor_token.hpp"

namespace tunnel::relay {

namespace {

// Keys (exact, or a prefix ending in '.') whose readers take them from
// relay_state::live() when a request, connection or attach starts.
constexpr std::string_view live_keys[] = {
    "jwt.",
    "limits.tenant_rps",
    "limits.tenant_burst",
    "limits.route_rps",
    "limits.route_burst",
    "limits.max_streams_per_tunnel",
    "limits.max_header_bytes",
    "limits.max_body_bytes",
    "limits.header_read_timeout",
    "limits.idle_timeout",
    "limits.write_timeout",
    "limits.min_body_rate",
    "limits.min_body_rate_grace",
    "limits.max_password_checks",
    "limits.max_tunnels_per_tenant",
    "limits.max_names_per_tenant",
    "limits.max_channel_buffer_bytes",
    "limits.max_tunnel_buffer_bytes",
    "limits.idle_channels_per_name",
    "limits.idle_channel_timeout",
    "breaker.",
    "liveness.",
    "shutdown.",
    "visitors.",
    "agent_forwarding.",
    "leases.grace",
    "queue.max_wait",
};

// "key: value" lines as a map (a key listed twice keeps both values).
std::map<std::string, std::string> lines_of(const relay_config& c) {
    std::map<std::string, std::string> out;
    for (const auto& line : describe(c)) {
        const auto colon = line.find(": ");
        std::string key = colon == std::string::npos ? line : line.substr(0, colon);
        std::string value = colon == std::string::npos ? std::string() : line.substr(colon + 2);
        auto [it, fresh] = out.emplace(key, value);
        if (!fresh) it->second += "; " + value;
    }
    // Not in describe(): the shares limits.
    out["shares.max_per_tenant"] = std::to_string(c.shares.limits.max_per_tenant);
    out["shares.max_ttl"] = std::to_string(c.shares.limits.max_ttl.count()) + "s";
    out["shares.max_body_bytes"] = std::to_string(c.shares.limits.max_body_bytes);
    out["shares.use_audit_interval"] = std::to_string(c.shares.use_audit_interval.count()) + "ms";
    return out;
}

}  // namespace

bool reloadable_key(std::string_view key) noexcept {
    for (auto k : live_keys) {
        if (k.back() == '.' ? key.substr(0, k.size()) == k : key == k) return true;
    }
    return false;
}

reload_plan diff_configs(const relay_config& running, const relay_config& next) {
    reload_plan plan;
    const auto before = lines_of(running);
    const auto after = lines_of(next);
    auto add = [&](const std::string& key, std::string a, std::string b) {
        auto& list = reloadable_key(key) ? plan.live : plan.restart;
        list.push_back({key, std::move(a), std::move(b)});
    };
    for (const auto& [key, value] : before) {
        auto it = after.find(key);
        if (it == after.end())
            add(key, value, "(absent)");
        else if (it->second != value)
            add(key, value, it->second);
    }
    for (const auto& [key, value] : after)
        if (!before.count(key)) add(key, "(absent)", value);
    return plan;
}

std::string describe(const std::vector<config_change>& changes) {
    std::string out;
    for (const auto& c : changes) {
        if (!out.empty()) out += "\n";
        out += fmt::format("{}: {} -> {}", c.key, c.before, c.after);
    }
    return out;
}

core::result<live_settings> load_live_settings(const relay_config& config) {
    auto verifier = token_verifier::load(verifier_options_for(config));
    if (!verifier) return tl::unexpected(verifier.error());
    live_settings out{config, std::move(*verifier), {}, 1};
    if (!config.visitors.secret_file.empty()) {
        auto visitor = token_verifier::load(visitor_verifier_options(
            config.visitors.secret_file,
            std::chrono::duration_cast<std::chrono::seconds>(config.jwt.leeway)));
        if (!visitor)
            return core::fail(core::errc::invalid_argument,
                              fmt::format("visitors.secret_file: {}", visitor.error().message));
        out.visitor_tokens.emplace(std::move(*visitor));
    }
    return out;
}

core::result<std::vector<config_change>> reload_config(relay_state& state,
                                                       const relay_config& running,
                                                       const relay_config& next) {
    auto plan = diff_configs(running, next);
    if (!plan.restart.empty()) {
        std::vector<std::string> keys;
        for (const auto& c : plan.restart) keys.push_back(c.key);
        return core::fail(
            core::errc::invalid_argument,
            fmt::format("not reloaded: {} {} only at start (restart the relay for {}):\n{}\nthe "
                        "running configuration stays in force",
                        fmt::join(keys, ", "), keys.size() == 1 ? "takes effect" : "take effect",
                        keys.size() == 1 ? "it" : "them", describe(plan.restart)));
    }
    auto settings = load_live_settings(next);
    if (!settings)
        return core::fail(settings.error().code,
                          fmt::format("not reloaded: {}; the running configuration stays in force",
                                      settings.error().message));
    const auto current = state.live();
    // What relay_server::create resolved at start (0 = auto) stays as it is.
    settings->config.limits.max_connections = current->config.limits.max_connections;
    settings->config.limits.max_unauthenticated = current->config.limits.max_unauthenticated;
    settings->version = current->version + 1;
    state.set_live(std::make_shared<const live_settings>(std::move(*settings)));
    return std::move(plan.live);
}

}  // namespace tunnel::relay
