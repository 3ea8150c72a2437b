#include "ssh/ssh_config_keywords.hpp"

#include <algorithm>
#include <array>
#include <limits>

#include "core/glob.hpp"
#include "ssh/agent_forward_config.hpp"

namespace tunnel::ssh::config_keywords {

using core::errc;
using core::fail;
using namespace config_syntax;

namespace {

const resolve_context& validation_context() {
    static const resolve_context ctx{};
    return ctx;
}

core::result<std::string_view> single_arg(int id, const std::vector<std::string>& args) {
    if (args.size() != 1)
        return fail(errc::invalid_argument, std::string(keyword_name(id)) +
                                                " takes exactly one argument, got " +
                                                std::to_string(args.size()));
    return std::string_view(args[0]);
}

core::result<void> check_path_tokens(std::string_view v) {
    auto r = expand_tokens(v, path_tokens, true, nullptr, validation_context());
    if (!r) return tl::unexpected(r.error());
    return {};
}

}  // namespace

core::result<void> apply_option(int id, const std::vector<std::string>& args, resolve_state* st) {
    const std::string name(keyword_name(id));
    auto bad = [&](std::string_view v, std::string_view allowed) {
        return fail(errc::invalid_argument,
                    name + " must be " + std::string(allowed) + ", got " + quoted_config_value(v));
    };
    auto flag = [&](bool host_config::*field) -> core::result<void> {
        auto v = single_arg(id, args);
        if (!v) return tl::unexpected(v.error());
        auto b = parse_flag(name, *v);
        if (!b) return tl::unexpected(b.error());
        if (st && st->take(static_cast<kw>(id))) st->cfg.*field = *b;
        return {};
    };
    auto text = [&](std::optional<std::string> host_config::*field) -> core::result<void> {
        auto v = single_arg(id, args);
        if (!v) return tl::unexpected(v.error());
        if (v->empty()) return bad(*v, "a non-empty value");
        if (st && st->take(static_cast<kw>(id))) st->cfg.*field = std::string(*v);
        return {};
    };

    switch (id) {
        case k_hostname: {
            auto v = single_arg(id, args);
            if (!v) return tl::unexpected(v.error());
            if (v->empty()) return bad(*v, "a host name or address");
            auto r = expand_tokens(*v, hostname_tokens, false, nullptr, validation_context());
            if (!r) return tl::unexpected(r.error());
            if (st && st->take(k_hostname)) st->cfg.hostname = std::string(*v);
            return {};
        }
        case k_user: {
            auto v = single_arg(id, args);
            if (!v) return tl::unexpected(v.error());
            if (v->empty()) return bad(*v, "a user name");
            if (st && st->take(k_user)) st->cfg.user = std::string(*v);
            return {};
        }
        case k_port: {
            auto v = single_arg(id, args);
            if (!v) return tl::unexpected(v.error());
            auto p = parse_port_value(*v);
            if (!p) return tl::unexpected(p.error());
            if (st && st->take(k_port)) st->cfg.port = *p;
            return {};
        }
        case k_identity_file:
        case k_certificate_file: {
            auto v = single_arg(id, args);
            if (!v) return tl::unexpected(v.error());
            if (v->empty()) return bad(*v, "a file path");
            if (auto r = check_path_tokens(*v); !r) return r;
            if (st)  // accumulates
                (id == k_identity_file ? st->raw_identity_files : st->raw_certificate_files)
                    .push_back({std::string(*v), st->origin});
            return {};
        }
        case k_identities_only:
            return flag(&host_config::identities_only);
        case k_identity_agent: {
            auto v = single_arg(id, args);
            if (!v) return tl::unexpected(v.error());
            if (v->empty()) return bad(*v, "a socket path, SSH_AUTH_SOCK, $VAR or none");
            if ((*v)[0] != '$')
                if (auto r = check_path_tokens(*v); !r) return r;
            if (st && st->take(k_identity_agent)) {
                st->cfg.identity_agent = std::string(*v);
                st->identity_agent_origin = st->origin;
            }
            return {};
        }
        case k_forward_agent: {
            auto v = single_arg(id, args);
            if (!v) return tl::unexpected(v.error());
            auto value = parse_forward_agent(*v);  // ssh/agent_forward_config.hpp
            if (!value) return tl::unexpected(value.error());
            if (*value && **value != "yes" && (**value)[0] != '$')
                if (auto r = check_path_tokens(**value); !r) return r;
            if (st && st->take(k_forward_agent)) {
                st->cfg.forward_agent = std::move(*value);
                st->forward_agent_origin = st->origin;
            }
            return {};
        }
        case k_proxy_jump: {
            auto v = single_arg(id, args);
            if (!v) return tl::unexpected(v.error());
            std::vector<jump_hop> hops;
            if (!iequals(*v, "none")) {
                std::size_t start = 0;
                while (start <= v->size()) {
                    auto comma = v->find(',', start);
                    if (comma == std::string_view::npos) comma = v->size();
                    auto hop = parse_target(v->substr(start, comma - start));
                    if (!hop)
                        return fail(errc::invalid_argument,
                                    "ProxyJump must be none or a comma-separated list of "
                                    "[user@]host[:port]: " +
                                        hop.error().message);
                    hops.push_back(std::move(*hop));
                    start = comma + 1;
                }
            }
            if (st && st->take(k_proxy_jump)) st->cfg.proxy_jump = std::move(hops);
            return {};
        }
        case k_proxy_command: {
            if (args.empty() || args[0].empty()) return bad("", "a command or none");
            if (!iequals(args[0], "none")) {
                // Only %h %n %p %r %% are known when the command starts.
                static const resolve_context no_context;
                if (auto e =
                        expand_tokens(args[0], proxy_command_tokens, false, nullptr, no_context);
                    !e)
                    return tl::unexpected(e.error());
            }
            if (st && st->take(k_proxy_jump) && !iequals(args[0], "none")) {
                st->cfg.proxy_command = args[0];
                st->proxy_command_origin = st->origin;
            }
            return {};
        }
        case k_connect_timeout:
        case k_server_alive_interval: {
            auto v = single_arg(id, args);
            if (!v) return tl::unexpected(v.error());
            std::optional<long long> secs;
            if (id == k_connect_timeout && iequals(*v, "none"))
                secs = 0;
            else
                secs = parse_openssh_time(*v);
            if (!secs)
                return bad(*v, id == k_connect_timeout
                                   ? "a time like 10, 30s, 5m or 1h30m (or none)"
                                   : "a time like 0 (off), 15, 30s or 5m");
            if (st && st->take(static_cast<kw>(id))) {
                if (id == k_connect_timeout) {
                    if (*secs > 0)
                        st->cfg.connect_timeout = std::chrono::milliseconds(*secs * 1000);
                    else
                        st->cfg.connect_timeout.reset();
                } else {
                    st->cfg.server_alive_interval = std::chrono::seconds(*secs);
                }
            }
            return {};
        }
        case k_server_alive_count_max:
        case k_connection_attempts: {
            auto v = single_arg(id, args);
            if (!v) return tl::unexpected(v.error());
            auto n = parse_uint(*v, std::numeric_limits<int>::max());
            const bool attempts = id == k_connection_attempts;
            if (!n || (attempts && *n < 1))
                return bad(*v, attempts ? "a whole number >= 1" : "a whole number >= 0");
            if (st && st->take(static_cast<kw>(id)))
                (attempts ? st->cfg.connection_attempts : st->cfg.server_alive_count_max) =
                    static_cast<int>(*n);
            return {};
        }
        case k_strict_host_key_checking: {
            auto v = single_arg(id, args);
            if (!v) return tl::unexpected(v.error());
            strict_host_key_checking s;
            if (iequals(*v, "yes") || iequals(*v, "true") || iequals(*v, "ask"))
                s = strict_host_key_checking::yes;
            else if (iequals(*v, "accept-new"))
                s = strict_host_key_checking::accept_new;
            else if (iequals(*v, "no") || iequals(*v, "false") || iequals(*v, "off"))
                s = strict_host_key_checking::no;
            else
                return bad(*v, "yes, ask, accept-new, no or off");
            if (st && st->take(k_strict_host_key_checking)) st->cfg.strict = s;
            return {};
        }
        case k_user_known_hosts_file:
        case k_global_known_hosts_file: {
            if (args.empty()) return bad("", "one or more file paths, or none");
            for (const auto& a : args) {
                if (a.empty()) return bad(a, "one or more file paths, or none");
                if (id == k_user_known_hosts_file)
                    if (auto r = check_path_tokens(a); !r) return r;
            }
            if (st && st->take(static_cast<kw>(id))) {
                const bool none = args.size() == 1 && iequals(args[0], "none");
                if (id == k_user_known_hosts_file) {
                    st->raw_user_known_hosts.emplace();
                    if (!none)
                        for (const auto& a : args)
                            st->raw_user_known_hosts->push_back({a, st->origin});
                } else if (!none) {
                    st->cfg.global_known_hosts_files = args;
                }
            }
            return {};
        }
        case k_host_key_alias:
            return text(&host_config::host_key_alias);
        case k_hash_known_hosts:
            return flag(&host_config::hash_known_hosts);
        case k_batch_mode:
            return flag(&host_config::batch_mode);
        case k_password_authentication:
            return flag(&host_config::password_authentication);
        case k_kbd_interactive_authentication:
            return flag(&host_config::kbd_interactive_authentication);
        case k_pubkey_authentication: {
            auto v = single_arg(id, args);
            if (!v) return tl::unexpected(v.error());
            bool on;
            if (iequals(*v, "yes") || iequals(*v, "true") || iequals(*v, "unbound") ||
                iequals(*v, "host-bound"))
                on = true;
            else if (iequals(*v, "no") || iequals(*v, "false"))
                on = false;
            else
                return bad(*v, "yes, no, unbound or host-bound");
            if (st && st->take(k_pubkey_authentication)) st->cfg.pubkey_authentication = on;
            return {};
        }
        case k_compression:
            return flag(&host_config::compression);
        case k_ciphers:
            return text(&host_config::ciphers);
        case k_kex_algorithms:
            return text(&host_config::kex_algorithms);
        case k_macs:
            return text(&host_config::macs);
        case k_host_key_algorithms:
            return text(&host_config::host_key_algorithms);
        case k_log_level: {
            auto v = single_arg(id, args);
            if (!v) return tl::unexpected(v.error());
            static constexpr std::array<std::string_view, 9> levels{"QUIET",  "FATAL",   "ERROR",
                                                                    "INFO",   "VERBOSE", "DEBUG",
                                                                    "DEBUG1", "DEBUG2",  "DEBUG3"};
            auto it = std::find_if(levels.begin(), levels.end(),
                                   [&](std::string_view l) { return iequals(l, *v); });
            if (it == levels.end())
                return bad(*v,
                           "QUIET, FATAL, ERROR, INFO, VERBOSE, DEBUG, DEBUG1, DEBUG2 or DEBUG3");
            if (st && st->take(k_log_level)) st->cfg.log_level = std::string(*it);
            return {};
        }
        case k_request_tty: {
            auto v = single_arg(id, args);
            if (!v) return tl::unexpected(v.error());
            request_tty t;
            if (iequals(*v, "auto"))
                t = request_tty::automatic;
            else if (iequals(*v, "no") || iequals(*v, "false"))
                t = request_tty::no;
            else if (iequals(*v, "yes") || iequals(*v, "true"))
                t = request_tty::yes;
            else if (iequals(*v, "force"))
                t = request_tty::force;
            else
                return bad(*v, "auto, no, yes or force");
            if (st && st->take(k_request_tty)) st->cfg.tty = t;
            return {};
        }
        case k_set_env: {
            if (args.empty()) return bad("", "one or more NAME=VALUE");
            std::vector<std::pair<std::string, std::string>> env;
            for (const auto& a : args) {
                auto eq = a.find('=');
                if (eq == std::string::npos || eq == 0) return bad(a, "one or more NAME=VALUE");
                auto key = a.substr(0, eq);
                // OpenSSH keeps the first value of a duplicated name.
                if (std::none_of(env.begin(), env.end(),
                                 [&](const auto& kv) { return kv.first == key; }))
                    env.emplace_back(key, a.substr(eq + 1));
            }
            if (st && st->take(k_set_env)) st->cfg.set_env = std::move(env);
            return {};
        }
        case k_send_env: {
            if (args.empty()) return bad("", "one or more variable name patterns");
            for (const auto& a : args)
                if (a.empty() || a == "-" || a.find('=') != std::string::npos)
                    return bad(a, "variable name patterns (-PATTERN removes)");
            if (st) {
                auto& list = st->cfg.send_env;
                for (const auto& a : args) {
                    if (a[0] == '-') {  // remove earlier patterns it matches
                        std::string_view pat = std::string_view(a).substr(1);
                        std::erase_if(
                            list, [&](const std::string& s) { return core::glob_match(pat, s); });
                    } else if (std::find(list.begin(), list.end(), a) == list.end()) {
                        list.push_back(a);
                    }
                }
            }
            return {};
        }
        case k_ignore_unknown: {
            if (args.empty()) return bad("", "one or more keyword patterns");
            return {};
        }
        case k_ignored:
            return {};
        default:
            return fail(errc::invalid_argument, name + " is not valid here");
    }
}

core::error at(const std::string& origin, const core::error& e) {
    return core::error{e.code, origin + ": " + e.message};
}

}  // namespace tunnel::ssh::config_keywords
