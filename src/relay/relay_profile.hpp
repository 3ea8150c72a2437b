// `tunnel relay --profile dev|prod`: named presets of the whole relay
// configuration that a config file and --set KEY=VALUE then override, key by
// key (docs/relay.md "Profiles").
//
//   dev   loopback only, plain HTTP (127.0.0.1:8080, admin 127.0.0.1:9090),
//         an ephemeral host key, no audit log, permissive limits: what
//         `tunnel relay --dev` runs.
//   prod  TLS on 0.0.0.0:8443 with /etc/tunnel/tls/relay.{crt,key}, admin
//         on 127.0.0.1:9090, host key in /var/lib/tunnel, a rotated audit
//         log in /var/log/tunnel, HS256 secret /etc/tunnel/jwt.secret, the
//         default limits: what the packaged tunnel-relay.service runs.
//
// Layering: profile, then the config file's keys (a key given replaces the
// profile's value; `tls: ~` and `audit_log: ~` turn those off; a jwt key
// source replaces the profile's), then --set KEY=VALUE pairs (a dotted key
// path and a YAML value, e.g. limits.tenant_rps=200), then --listen,
// --admin-listen and --jwt-secret-file when given on the command line.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "relay/relay_config.hpp"

namespace tunnel::relay {

enum class relay_profile { dev, prod };

[[nodiscard]] core::result<relay_profile> parse_relay_profile(std::string_view name);
[[nodiscard]] std::string_view to_string(relay_profile p) noexcept;

// parse_relay_config (relay_config.hpp) over `base` instead of the built-in
// defaults: keys the document gives replace the base's, nothing is required
// (the base has it), an empty document is the base; `tls: ~` and
// `audit_log: ~` turn those off; a jwt key source replaces the base's.
// Defined in relay_config.cpp beside the parser.
[[nodiscard]] core::result<relay_config> parse_relay_config(std::string_view yaml_text,
                                                            const std::string& source,
                                                            const relay_config& base);

// The preset itself (not validated: dev has no JWT key until one is given).
[[nodiscard]] relay_config profile_config(relay_profile p);

// The config file's YAML text with each "a.b.c=VALUE" of `sets` merged in
// (VALUE is read as YAML: 200, true, 30s, [a, b], {k: v}). Errors name the
// --set that was wrong.
[[nodiscard]] core::result<std::string> apply_sets(std::string_view yaml_text,
                                                   const std::vector<std::string>& sets);

// Command-line values that override everything else when given.
struct relay_flag_overrides {
    std::string listen;           // empty: not given
    std::string admin_listen;     // empty: not given
    std::string jwt_secret_file;  // empty: not given (replaces any other key source)
};

// The profile, then `config_text` (may be empty; named `source` in
// messages) with `sets` merged in, then `flags`; validated as a whole.
[[nodiscard]] core::result<relay_config> profile_relay_config(relay_profile p,
                                                              std::string_view config_text,
                                                              const std::string& source,
                                                              const std::vector<std::string>& sets,
                                                              const relay_flag_overrides& flags);

}  // namespace tunnel::relay
