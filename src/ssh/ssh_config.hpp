// OpenSSH client configuration: `~/.ssh/config`, `-F FILE` and `-o Key=Value`,
// read with OpenSSH's rules so that a user's existing config behaves the same
// under `tunnel` as under `ssh`:
//
//  * keywords are case-insensitive; `Key Value`, `Key=Value`, `Key = Value`;
//    arguments may be double- or single-quoted; `#` starts a comment;
//  * `Host PATTERN...` (whitespace-separated, `*`, `?`, `!` excludes) and
//    `Match all|host|originalhost|user|localuser` (comma lists) start
//    conditional blocks; `Include` (globs, relative
//    to ~/.ssh, or /etc/ssh for the system file) is read in place, 16 deep;
//  * for each keyword the FIRST value obtained wins, except IdentityFile,
//    CertificateFile and SendEnv, which accumulate. `-o` overrides, `-l USER`
//    and `-p PORT` are obtained before the files, so they win;
//  * every keyword of `man 5 ssh_config` (OpenSSH 9.2) is accepted; those we
//    do not model are ignored. Anything else is an error naming file:line,
//    unless an earlier `IgnoreUnknown` pattern covers it.
//
// Values are validated when the file is loaded (even inside blocks that match
// no host), so `tunnel` can report config errors before connecting.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace tunnel::ssh {

// StrictHostKeyChecking: `yes`/`ask` -> yes (we never ask), `accept-new`,
// `no`/`off` -> no.
enum class strict_host_key_checking { yes, accept_new, no };

// RequestTTY: `auto` (default: a TTY when running a shell), `no`, `yes`, `force`.
enum class request_tty { automatic, no, yes, force };

// `[user@]host[:port]`, `ssh://[user@]host[:port]`, `[v6addr]:port`.
struct target {
    std::optional<std::string> user;
    std::string host;
    std::optional<uint16_t> port;

    friend bool operator==(const target&, const target&) = default;
};

// Parses a destination as given on the command line or in ProxyJump. An IPv6
// address must be bracketed to carry a port (`[::1]:2222`); a bare `::1` is a
// host without port. Fails with errc::invalid_argument and a message that
// says how to write it (empty host or user, bad port, whitespace, path).
[[nodiscard]] core::result<target> parse_target(std::string_view text);

// One ProxyJump hop, outermost first. A missing user or port is resolved by
// the caller against the config for that hop's host, as ssh does.
using jump_hop = target;

// Fully resolved settings for one destination, with OpenSSH's defaults
// applied and tokens (`~`, `%h`, ...) expanded.
struct host_config {
    std::string alias;     // as given on the command line (%n)
    std::string hostname;  // HostName (%h expanded) or the alias
    std::string user;      // User, -l, user@ or the local user
    uint16_t port = 22;

    // IdentityFile in the order obtained. When none was configured these are
    // OpenSSH's default key paths and identity_files_are_defaults is true:
    // callers skip missing ones silently.
    std::vector<std::string> identity_files;
    bool identity_files_are_defaults = false;
    std::vector<std::string> certificate_files;
    bool identities_only = false;
    // IdentityAgent as written (expanded): nullopt = SSH_AUTH_SOCK, "none" =
    // no agent, "SSH_AUTH_SOCK" or "$VAR" = take the socket from that variable.
    std::optional<std::string> identity_agent;
    // ForwardAgent as written (a path expanded): nullopt = no (the default),
    // "yes" = the agent used to log in, else a socket path or "$VAR"/"${VAR}".
    std::optional<std::string> forward_agent;

    // ProxyJump hops; empty when unset or `none`. ProxyCommand competes with
    // ProxyJump: whichever is obtained first wins, the other stays empty.
    std::vector<jump_hop> proxy_jump;
    std::optional<std::string> proxy_command;  // %h %n %p %r expanded; `none` -> nullopt

    std::optional<std::chrono::milliseconds> connect_timeout;  // nullopt: none (0 or `none`)
    std::chrono::seconds server_alive_interval{0};
    int server_alive_count_max = 3;
    int connection_attempts = 1;

    strict_host_key_checking strict = strict_host_key_checking::yes;
    std::vector<std::string> user_known_hosts_files;    // default ~/.ssh/known_hosts{,2}
    std::vector<std::string> global_known_hosts_files;  // default /etc/ssh/ssh_known_hosts{,2}
    std::optional<std::string> host_key_alias;  // name to look up in known_hosts instead of host
    bool hash_known_hosts = false;              // hash names when appending to known_hosts

    bool batch_mode = false;
    bool password_authentication = true;
    bool pubkey_authentication = true;
    // KbdInteractiveAuthentication (ChallengeResponseAuthentication is its old name).
    bool kbd_interactive_authentication = true;
    bool compression = false;
    // Algorithm lists as written, including OpenSSH's `+`, `-`, `^` prefixes.
    std::optional<std::string> ciphers, kex_algorithms, macs, host_key_algorithms;

    std::string log_level = "INFO";  // QUIET FATAL ERROR INFO VERBOSE DEBUG DEBUG1..3
    request_tty tty = request_tty::automatic;
    std::vector<std::pair<std::string, std::string>> set_env;  // SetEnv NAME=VALUE
    std::vector<std::string> send_env;                         // SendEnv patterns
};

// What the parser needs from the environment; injected so tests are hermetic.
struct resolve_context {
    std::string home;            // ~ and %d
    std::string local_user;      // %u, default User, Match localuser
    std::string local_hostname;  // %l (%L is its first label); may be empty
    // Variables for `${VAR}` in paths; unset -> `${VAR}` is an error on resolve.
    std::function<std::optional<std::string>(const std::string&)> getenv;
};

class ssh_config {
  public:
    // An empty configuration: only overrides and defaults apply.
    ssh_config() = default;

    // `-F FILE`: reads exactly that file. A missing file is errc::not_found.
    [[nodiscard]] static core::result<ssh_config> load_file(const std::string& path,
                                                            const resolve_context& ctx);

    // What ssh reads without -F: `~/.ssh/config`, then `system_path`
    // (pass "" to skip it). Missing files are not an error.
    [[nodiscard]] static core::result<ssh_config> load_default(
        const resolve_context& ctx, const std::string& system_path = "/etc/ssh/ssh_config");

    // Parses config text; `source_name` is used in messages ("name:line: ...")
    // and relative Includes are looked up in ~/.ssh.
    [[nodiscard]] static core::result<ssh_config> parse(std::string_view text,
                                                        std::string_view source_name,
                                                        const resolve_context& ctx);

    // `-o Key=Value` (also `Key Value`). Overrides added earlier win over
    // later ones and over the files. Host, Match and Include are refused.
    [[nodiscard]] core::result<void> add_override(std::string_view key_eq_value);

    // Settings for `alias`. `user_override`/`port_override` come from -l/-p or
    // from user@host:port in the target; they beat the files, as in ssh, and
    // are visible to `Match user`. Fails only when a token cannot be expanded
    // (e.g. `${VAR}` unset).
    [[nodiscard]] core::result<host_config> resolve(
        std::string_view alias, std::optional<std::string> user_override = std::nullopt,
        std::optional<uint16_t> port_override = std::nullopt) const;

    // Parsed line of a config; public only so the implementation can share it.
    struct entry {
        enum class kind { host, match, option, scope_begin, scope_end };
        kind what = kind::option;
        int keyword = 0;                // internal keyword id (option)
        std::vector<std::string> args;  // patterns, match criteria or values
        std::string origin;             // "file:line" or "-o Key=Value"
    };

  private:
    resolve_context ctx_;
    std::vector<entry> overrides_;
    std::vector<entry> entries_;
};

}  // namespace tunnel::ssh
