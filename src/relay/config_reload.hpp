// Reloading the relay's configuration while it runs (SIGHUP; docs/relay.md
// "Reloading the configuration"). The new file is parsed and validated as at
// start; then compared with the config the relay runs, key by key (the
// "key: value" lines describe() prints). A change to a key that only takes
// effect at start (listeners, workers, TLS, state files, ...) refuses the
// whole reload: the running config stays in force, and the message names
// every such key. Otherwise the new settings, with token verifiers built
// from the new key files, are published as one immutable live_settings
// snapshot (relay_state::set_live): requests and attaches that start after
// it see the new values, those in flight keep the ones they started with.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "relay/live_settings.hpp"
#include "relay/relay_config.hpp"

namespace tunnel::relay {

class relay_state;

struct config_change {
    std::string key;     // "limits.route_rps", "visitors.names.acme/web", ...
    std::string before;  // as describe() shows it; "(absent)" for a new key
    std::string after;   // "(absent)" for a removed key
};

struct reload_plan {
    std::vector<config_change> live;     // applied by a reload
    std::vector<config_change> restart;  // need a restart: the reload is refused
};

// True for keys a reload applies (docs/relay.md lists them).
[[nodiscard]] bool reloadable_key(std::string_view key) noexcept;

// Every key whose value differs between `running` and `next`, split by
// reloadable_key. Pure.
[[nodiscard]] reload_plan diff_configs(const relay_config& running, const relay_config& next);

// One line per change: "limits.route_rps: 20 -> 200".
[[nodiscard]] std::string describe(const std::vector<config_change>& changes);

// The settings `config` asks for: verifiers loaded from its key files
// (jwt.*, visitors.secret_file). Errors name the key and the file.
[[nodiscard]] core::result<live_settings> load_live_settings(const relay_config& config);

// Applies `next` (as loaded: before relay_server::create resolved
// anything) over `running` (the config as last loaded) to `state`.
// On success: the changes applied (maybe none). Errors: invalid_argument
// with every restart-only key changed, or a key file that cannot be
// loaded; nothing changed then.
[[nodiscard]] core::result<std::vector<config_change>> reload_config(relay_state& state,
                                                                     const relay_config& running,
                                                                     const relay_config& next);

}  // namespace tunnel::relay
