// The lexical layer of ssh_config: the keyword table, line splitting, value
// parsers and token expansion. Internal to src/ssh/ssh_config_*.cpp, split out
// so each file has one job; not part of the public API.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "ssh/ssh_config.hpp"

namespace tunnel::ssh::config_syntax {

enum kw : int {
    k_unknown = 0,
    k_host,
    k_match,
    k_include,
    k_ignore_unknown,
    k_hostname,
    k_user,
    k_port,
    k_identity_file,
    k_certificate_file,
    k_identities_only,
    k_identity_agent,
    k_proxy_jump,  // also taken by ProxyCommand: whichever comes first wins
    k_proxy_command,
    k_connect_timeout,
    k_server_alive_interval,
    k_server_alive_count_max,
    k_strict_host_key_checking,
    k_user_known_hosts_file,
    k_global_known_hosts_file,
    k_host_key_alias,
    k_hash_known_hosts,
    k_batch_mode,
    k_password_authentication,
    k_pubkey_authentication,
    k_kbd_interactive_authentication,
    k_ciphers,
    k_kex_algorithms,
    k_macs,
    k_host_key_algorithms,
    k_compression,
    k_connection_attempts,
    k_log_level,
    k_set_env,
    k_send_env,
    k_request_tty,
    k_forward_agent,
    k_ignored,  // a real OpenSSH keyword we accept and do not model
    k_count
};

struct keyword_info {
    std::string_view name;  // canonical spelling, used in messages
    kw id;
};

[[nodiscard]] bool iequals(std::string_view a, std::string_view b) noexcept;
[[nodiscard]] std::string lower(std::string_view s);
// nullptr for a keyword OpenSSH does not know.
[[nodiscard]] const keyword_info* find_keyword(std::string_view name) noexcept;
[[nodiscard]] std::string_view keyword_name(int id) noexcept;

[[nodiscard]] bool is_space(char c) noexcept;
struct split_line {
    std::string keyword;
    std::vector<std::string> args;
    std::string raw_value;  // everything after the keyword and '=' (ProxyCommand)
};
// nullopt for blank and comment lines.
[[nodiscard]] core::result<std::optional<split_line>> split_config_line(std::string_view line);

[[nodiscard]] std::string quoted_config_value(std::string_view s);
// OpenSSH's convtime: `90`, `30s`, `5m`, `1h30m`, `2d`, `1w`; units any case.
[[nodiscard]] std::optional<long long> parse_openssh_time(std::string_view v);
[[nodiscard]] std::optional<long long> parse_uint(std::string_view v, long long max);
[[nodiscard]] core::result<uint16_t> parse_port_value(std::string_view v);
[[nodiscard]] core::result<bool> parse_flag(std::string_view name, std::string_view v);

inline constexpr std::string_view path_tokens = "%CdhLlnpru";
inline constexpr std::string_view hostname_tokens = "%h";
inline constexpr std::string_view proxy_command_tokens = "%hnpr";  // as OpenSSH's ProxyCommand
using token_fn = std::function<std::string(char)>;
// Expands `~`, `%x` and `${VAR}`; with `values == nullptr` only checks the syntax (used when
// loading).
[[nodiscard]] core::result<std::string> expand_tokens(std::string_view in, std::string_view allowed,
                                                      bool tilde_and_env, const token_fn* values,
                                                      const resolve_context& ctx);
[[nodiscard]] std::string sha1_hex(std::string_view data);

}  // namespace tunnel::ssh::config_syntax
