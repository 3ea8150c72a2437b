#include "ssh/ssh_config.hpp"

#include <glob.h>

#include <algorithm>
#include <array>
#include <bitset>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <tuple>

#include "core/glob.hpp"
#include "ssh/agent_forward_config.hpp"
#include "ssh/ssh_config_syntax.hpp"

namespace tunnel::ssh {

namespace {

using core::errc;
using core::fail;
using entry = ssh_config::entry;

constexpr int max_include_depth = 16;  // OpenSSH's READCONF_MAX_DEPTH

using namespace config_syntax;

// ---------------------------------------------------------------------------
// Patterns

// OpenSSH's match_pattern_list (see core::pattern_list_match).
bool match_pattern_list(std::string_view text, std::string_view list, bool fold_case) {
    return core::pattern_list_match(list, text, fold_case);
}

// ---------------------------------------------------------------------------
// Resolution state and keyword semantics

struct resolve_state {
    const resolve_context* ctx = nullptr;
    std::string alias;
    host_config cfg;
    std::bitset<k_count> obtained;
    // Paths are expanded once every value is known; each remembers the line
    // it came from so an expansion error can name it.
    struct raw_path {
        std::string value;
        std::string origin;
    };
    std::string origin;  // of the entry being applied
    std::vector<raw_path> raw_identity_files, raw_certificate_files;
    std::optional<std::vector<raw_path>> raw_user_known_hosts;
    std::string identity_agent_origin;
    std::string forward_agent_origin;

    // First obtained value wins.
    bool take(kw id) {
        if (obtained[id]) return false;
        obtained[id] = true;
        return true;
    }

    // The host `Match host` compares against: HostName so far, else the alias.
    [[nodiscard]] std::string current_hostname() const {
        if (!obtained[k_hostname]) return alias;
        token_fn values = [&](char) { return alias; };
        auto h = expand_tokens(cfg.hostname, hostname_tokens, false, &values, *ctx);
        return h ? *h : alias;
    }
    [[nodiscard]] std::string current_user() const {
        return obtained[k_user] ? cfg.user : ctx->local_user;
    }
};

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

// Validates `args` for keyword `id` and, when `st` is set, applies them with
// first-wins / accumulate semantics. Messages carry no location: callers
// prefix "file:line: " or "-o ...: ".
core::result<void> apply_option(int id, const std::vector<std::string>& args, resolve_state* st) {
    const std::string name(keyword_name(id));
    auto bad = [&](std::string_view v, std::string_view allowed) {
        return fail(errc::invalid_argument,
                    name + " must be " + std::string(allowed) + ", got " + quoted(v));
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
            if (st && st->take(k_proxy_jump) && !iequals(args[0], "none"))
                st->cfg.proxy_command = args[0];
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

// ---------------------------------------------------------------------------
// Match

constexpr std::string_view match_help =
    "supported: all, host, originalhost, user, localuser, each optionally negated with !";

core::result<std::vector<std::string>> parse_match(const std::vector<std::string>& args) {
    if (args.empty())
        return fail(errc::invalid_argument,
                    "Match needs criteria (" + std::string(match_help) + ")");
    std::vector<std::string> out;  // pairs: criterion (maybe "!x"), argument
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string crit = lower(args[i]);
        std::string_view bare = crit;
        if (!bare.empty() && bare[0] == '!') bare.remove_prefix(1);
        if (bare == "all") {
            if (args.size() != 1)
                return fail(errc::invalid_argument,
                            "Match all cannot be combined with other criteria");
            out.push_back(crit);
            out.emplace_back();
            continue;
        }
        if (bare != "host" && bare != "originalhost" && bare != "user" && bare != "localuser")
            return fail(errc::invalid_argument, "Match " + quoted(args[i]) + " is not supported (" +
                                                    std::string(match_help) + ")");
        if (i + 1 >= args.size() || args[i + 1].empty())
            return fail(errc::invalid_argument, "Match " + std::string(bare) +
                                                    " needs a pattern, e.g. Match " +
                                                    std::string(bare) + " *.example.com");
        out.push_back(crit);
        out.push_back(args[++i]);
    }
    return out;
}

bool match_matches(const std::vector<std::string>& criteria, const resolve_state& st) {
    for (std::size_t i = 0; i + 1 < criteria.size(); i += 2) {
        std::string_view crit = criteria[i];
        bool negate = crit[0] == '!';
        if (negate) crit.remove_prefix(1);
        const std::string& pat = criteria[i + 1];
        bool r = true;
        if (crit == "host")
            r = match_pattern_list(st.current_hostname(), pat, true);
        else if (crit == "originalhost")
            r = match_pattern_list(st.alias, pat, true);
        else if (crit == "user")
            r = match_pattern_list(st.current_user(), pat, false);
        else if (crit == "localuser")
            r = match_pattern_list(st.ctx->local_user, pat, false);
        if (r == negate) return false;
    }
    return true;
}

bool host_matches(const std::vector<std::string>& patterns, std::string_view alias) {
    bool matched = false;
    for (const auto& p : patterns) {
        std::string_view pat = p;
        bool negated = pat[0] == '!';
        if (negated) pat.remove_prefix(1);
        if (core::glob_match(pat, alias, true)) {
            if (negated) return false;  // a negated match excludes the block
            matched = true;
        }
    }
    return matched;
}

// ---------------------------------------------------------------------------
// Loading

core::error at(const std::string& origin, const core::error& e) {
    return core::error{e.code, origin + ": " + e.message};
}

struct loader {
    const resolve_context& ctx;
    std::string include_base;  // where relative Includes live
    std::vector<entry>& out;
    std::vector<std::string> ignore_unknown;  // IgnoreUnknown patterns seen so far

    core::result<void> parse_text(std::string_view text, const std::string& name, int depth) {
        int line_no = 0;
        std::size_t pos = 0;
        while (pos <= text.size()) {
            auto nl = text.find('\n', pos);
            if (nl == std::string_view::npos) nl = text.size();
            std::string_view line = text.substr(pos, nl - pos);
            pos = nl + 1;
            ++line_no;
            if (auto r = parse_line(line, name + ":" + std::to_string(line_no), depth); !r)
                return r;
            if (nl == text.size()) break;
        }
        return {};
    }

    core::result<void> parse_line(std::string_view line, const std::string& origin, int depth) {
        auto split = split_config_line(line);
        if (!split) return tl::unexpected(at(origin, split.error()));
        if (!*split) return {};
        auto& [keyword, args, raw] = **split;

        const keyword_info* k = find_keyword(keyword);
        if (!k) {
            for (const auto& pat : ignore_unknown)
                if (match_pattern_list(keyword, pat, true)) return {};
            return fail(errc::invalid_argument,
                        origin + ": Bad configuration option " + quoted(keyword) +
                            ": not an ssh_config keyword (check the spelling, or add "
                            "'IgnoreUnknown " +
                            keyword + "' before it to skip it)");
        }
        switch (k->id) {
            case k_host: {
                // Like OpenSSH, Host patterns are separated by whitespace only:
                // `Host a,b` is one pattern that no real host name matches
                // (`ssh -G` agrees). Match criteria take comma lists.
                entry e{entry::kind::host, k_host, {}, origin};
                for (const auto& a : args)
                    if (!a.empty() && a != "!") e.args.push_back(a);
                if (e.args.empty())
                    return fail(
                        errc::invalid_argument,
                        origin + ": Host needs at least one pattern, e.g. Host *.example.com");
                out.push_back(std::move(e));
                return {};
            }
            case k_match: {
                auto criteria = parse_match(args);
                if (!criteria) return tl::unexpected(at(origin, criteria.error()));
                out.push_back(entry{entry::kind::match, k_match, std::move(*criteria), origin});
                return {};
            }
            case k_include:
                return include(args, origin, depth);
            case k_ignore_unknown:
                for (const auto& a : args) ignore_unknown.push_back(a);
                break;
            default:
                break;
        }
        std::vector<std::string> values =
            k->id == k_proxy_command ? std::vector<std::string>{raw} : std::move(args);
        if (values.empty())
            return fail(errc::invalid_argument,
                        origin + ": " + std::string(k->name) + " is missing its value");
        if (auto r = apply_option(k->id, values, nullptr); !r)
            return tl::unexpected(at(origin, r.error()));
        out.push_back(entry{entry::kind::option, k->id, std::move(values), origin});
        return {};
    }

    core::result<void> include(const std::vector<std::string>& args, const std::string& origin,
                               int depth) {
        if (args.empty())
            return fail(errc::invalid_argument, origin + ": Include needs a file or glob");
        if (depth + 1 > max_include_depth)
            return fail(errc::invalid_argument, origin + ": Include nested more than " +
                                                    std::to_string(max_include_depth) +
                                                    " deep (does a file include itself?)");
        for (const auto& arg : args) {
            std::string path;
            if (arg == "~" || arg.starts_with("~/"))
                path = ctx.home + arg.substr(1);
            else if (arg.starts_with("/"))
                path = arg;
            else if (arg.starts_with("~"))
                return fail(errc::invalid_argument, origin + ": Include " + quoted(arg) +
                                                        ": ~user paths are not supported");
            else
                path = include_base + "/" + arg;

            glob_t g{};
            int rc = ::glob(path.c_str(), 0, nullptr, &g);
            if (rc == GLOB_NOMATCH) {
                ::globfree(&g);
                continue;  // like OpenSSH: an Include that matches nothing is fine
            }
            if (rc != 0) {
                ::globfree(&g);
                return fail(errc::io_error,
                            origin + ": Include " + quoted(arg) + ": cannot expand glob");
            }
            std::vector<std::string> files(g.gl_pathv, g.gl_pathv + g.gl_pathc);
            ::globfree(&g);
            for (const auto& f : files) {
                // The included file starts in the includer's state and cannot
                // change it (OpenSSH restores the Host/Match state afterwards).
                out.push_back(entry{entry::kind::scope_begin, 0, {}, f});
                if (auto r = read_file(f, depth + 1, false, origin); !r) return r;
                out.push_back(entry{entry::kind::scope_end, 0, {}, f});
            }
        }
        return {};
    }

    // Returns errc::not_found for a missing file when !missing_ok.
    core::result<void> read_file(const std::string& path, int depth, bool missing_ok,
                                 const std::string& included_from = {}) {
        std::string prefix = included_from.empty() ? "" : included_from + ": ";
        std::FILE* f = std::fopen(path.c_str(), "rb");
        if (!f) {
            int err = errno;
            if (err == ENOENT && missing_ok) return {};
            errc code = err == ENOENT   ? errc::not_found
                        : err == EACCES ? errc::permission_denied
                                        : errc::io_error;
            return fail(code,
                        prefix + "cannot read ssh config " + path + ": " + std::strerror(err));
        }
        std::string text;
        std::array<char, 8192> buf{};
        std::size_t n;
        while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) {
            text.append(buf.data(), n);
            if (text.size() > 16 * 1024 * 1024) {
                std::fclose(f);
                return fail(errc::invalid_argument,
                            prefix + "ssh config " + path + " is larger than 16 MiB");
            }
        }
        bool failed = std::ferror(f) != 0;
        int err = errno;
        std::fclose(f);
        if (failed)
            return fail(errc::io_error,
                        prefix + "cannot read ssh config " + path + ": " + std::strerror(err));
        return parse_text(text, path, depth);
    }
};

std::string short_hostname(const std::string& h) {
    return h.substr(0, h.find('.'));
}

}  // namespace

// ---------------------------------------------------------------------------
// parse_target

core::result<target> parse_target(std::string_view text) {
    const std::string shown = quoted(text);
    constexpr std::string_view form = "write [user@]host[:port], e.g. alice@db1:2222 or [::1]:2222";
    if (text.empty())
        return fail(errc::invalid_argument, "empty destination; " + std::string(form));
    for (char c : text)
        if (std::isspace(static_cast<unsigned char>(c)) ||
            std::iscntrl(static_cast<unsigned char>(c)))
            return fail(errc::invalid_argument, "destination " + shown +
                                                    " contains whitespace or control characters; " +
                                                    std::string(form));

    std::string_view rest = text;
    bool uri = false;
    if (rest.size() >= 6 && iequals(rest.substr(0, 6), "ssh://")) {
        uri = true;
        rest.remove_prefix(6);
        if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
        if (rest.find('/') != std::string_view::npos)
            return fail(errc::invalid_argument,
                        "destination " + shown +
                            " has a path; ssh:// destinations are ssh://[user@]host[:port]");
    }

    target t;
    auto at_pos = rest.rfind('@');
    if (at_pos != std::string_view::npos) {
        std::string_view user = rest.substr(0, at_pos);
        if (uri) user = user.substr(0, user.find(';'));  // ssh://user;params@host
        if (user.empty())
            return fail(errc::invalid_argument,
                        "empty user name in " + shown +
                            "; write user@host, or just host to use the default user");
        t.user = std::string(user);
        rest.remove_prefix(at_pos + 1);
    }

    std::string_view port;
    bool has_port = false;
    if (!rest.empty() && rest[0] == '[') {
        auto close = rest.find(']');
        if (close == std::string_view::npos)
            return fail(
                errc::invalid_argument,
                "missing ']' in " + shown + "; write IPv6 addresses as [::1] or [::1]:2222");
        t.host = std::string(rest.substr(1, close - 1));
        std::string_view after = rest.substr(close + 1);
        if (!after.empty()) {
            if (after[0] != ':')
                return fail(errc::invalid_argument, "unexpected " + quoted(after) +
                                                        " after ']' in " + shown + "; " +
                                                        std::string(form));
            has_port = true;
            port = after.substr(1);
        }
    } else {
        auto first = rest.find(':');
        if (first != std::string_view::npos &&
            rest.find(':', first + 1) == std::string_view::npos) {
            t.host = std::string(rest.substr(0, first));
            has_port = true;
            port = rest.substr(first + 1);
        } else {
            t.host = std::string(rest);  // no colon, or a bare IPv6 address
        }
        if (t.host.find_first_of("[]") != std::string::npos)
            return fail(
                errc::invalid_argument,
                "misplaced bracket in " + shown + "; write IPv6 addresses as [::1] or [::1]:2222");
    }
    if (t.host.empty())
        return fail(errc::invalid_argument, "missing host in " + shown + "; " + std::string(form));
    if (t.host[0] == '-')
        return fail(errc::invalid_argument,
                    "host in " + shown + " starts with '-'; host names cannot start with '-'");
    if (has_port) {
        auto p = parse_uint(port, 65535);
        if (!p || *p == 0)
            return fail(
                errc::invalid_argument,
                "invalid port " + quoted(port) + " in " + shown +
                    ": must be a number from 1 to 65535 (write host:2222, or omit :port for 22)");
        t.port = static_cast<uint16_t>(*p);
    }
    return t;
}

// ---------------------------------------------------------------------------
// ssh_config

core::result<ssh_config> ssh_config::parse(std::string_view text, std::string_view source_name,
                                           const resolve_context& ctx) {
    ssh_config cfg;
    cfg.ctx_ = ctx;
    loader l{ctx, ctx.home + "/.ssh", cfg.entries_, {}};
    cfg.entries_.push_back(entry{entry::kind::scope_begin, 0, {"top"}, std::string(source_name)});
    if (auto r = l.parse_text(text, std::string(source_name), 0); !r)
        return tl::unexpected(r.error());
    cfg.entries_.push_back(entry{entry::kind::scope_end, 0, {}, std::string(source_name)});
    return cfg;
}

core::result<ssh_config> ssh_config::load_file(const std::string& path,
                                               const resolve_context& ctx) {
    ssh_config cfg;
    cfg.ctx_ = ctx;
    loader l{ctx, ctx.home + "/.ssh", cfg.entries_, {}};
    cfg.entries_.push_back(entry{entry::kind::scope_begin, 0, {"top"}, path});
    if (auto r = l.read_file(path, 0, false); !r) return tl::unexpected(r.error());
    cfg.entries_.push_back(entry{entry::kind::scope_end, 0, {}, path});
    return cfg;
}

core::result<ssh_config> ssh_config::load_default(const resolve_context& ctx,
                                                  const std::string& system_path) {
    ssh_config cfg;
    cfg.ctx_ = ctx;
    const std::string user_path = ctx.home + "/.ssh/config";
    {
        loader l{ctx, ctx.home + "/.ssh", cfg.entries_, {}};
        cfg.entries_.push_back(entry{entry::kind::scope_begin, 0, {"top"}, user_path});
        if (auto r = l.read_file(user_path, 0, true); !r) return tl::unexpected(r.error());
        cfg.entries_.push_back(entry{entry::kind::scope_end, 0, {}, user_path});
    }
    if (!system_path.empty()) {
        auto slash = system_path.rfind('/');
        std::string base = slash == std::string::npos ? "." : system_path.substr(0, slash);
        loader l{ctx, base, cfg.entries_, {}};
        cfg.entries_.push_back(entry{entry::kind::scope_begin, 0, {"top"}, system_path});
        if (auto r = l.read_file(system_path, 0, true); !r) return tl::unexpected(r.error());
        cfg.entries_.push_back(entry{entry::kind::scope_end, 0, {}, system_path});
    }
    return cfg;
}

core::result<void> ssh_config::add_override(std::string_view key_eq_value) {
    const std::string origin = "-o " + std::string(key_eq_value);
    auto split = split_config_line(key_eq_value);
    if (!split) return tl::unexpected(at("invalid " + origin, split.error()));
    if (!*split)
        return fail(errc::invalid_argument,
                    "empty option " + origin + "; write -o Key=Value, e.g. -o Port=2222");
    auto& [keyword, args, raw] = **split;
    const keyword_info* k = find_keyword(keyword);
    if (!k)
        return fail(
            errc::invalid_argument,
            "unknown option " + origin + ": not an ssh_config keyword (see man 5 ssh_config)");
    if (k->id == k_host || k->id == k_match || k->id == k_include)
        return fail(errc::invalid_argument,
                    "option " + origin + ": " + std::string(k->name) +
                        " cannot be given with -o; put it in a file and use -F FILE");
    std::vector<std::string> values =
        k->id == k_proxy_command ? std::vector<std::string>{raw} : std::move(args);
    if (values.empty() || (values.size() == 1 && values[0].empty() && k->id != k_ignored))
        return fail(errc::invalid_argument, "option " + origin + ": missing value; write -o " +
                                                std::string(k->name) + "=VALUE");
    if (auto r = apply_option(k->id, values, nullptr); !r)
        return tl::unexpected(at("invalid " + origin, r.error()));
    overrides_.push_back(entry{entry::kind::option, k->id, std::move(values), origin});
    return {};
}

core::result<host_config> ssh_config::resolve(std::string_view alias,
                                              std::optional<std::string> user_override,
                                              std::optional<uint16_t> port_override) const {
    resolve_state st;
    st.ctx = &ctx_;
    st.alias = std::string(alias);
    st.cfg.alias = st.alias;
    if (user_override) {
        st.take(k_user);
        st.cfg.user = std::move(*user_override);
    }
    if (port_override) {
        st.take(k_port);
        st.cfg.port = *port_override;
    }

    auto apply = [&](const entry& e) -> core::result<void> {
        st.origin = e.origin;
        if (auto r = apply_option(e.keyword, e.args, &st); !r)
            return tl::unexpected(at(e.origin, r.error()));
        return {};
    };
    for (const auto& e : overrides_)
        if (auto r = apply(e); !r) return tl::unexpected(r.error());

    bool active = true;
    bool never_match = false;
    std::vector<std::pair<bool, bool>> saved;
    for (const auto& e : entries_) {
        switch (e.what) {
            case entry::kind::scope_begin:
                saved.emplace_back(active, never_match);
                if (!e.args.empty()) {  // a top-level file starts fresh
                    active = true;
                    never_match = false;
                } else {
                    never_match = never_match || !active;
                }
                break;
            case entry::kind::scope_end:
                if (!saved.empty()) {
                    std::tie(active, never_match) = saved.back();
                    saved.pop_back();
                }
                break;
            case entry::kind::host:
                active = !never_match && host_matches(e.args, st.alias);
                break;
            case entry::kind::match:
                active = !never_match && match_matches(e.args, st);
                break;
            case entry::kind::option:
                if (active)
                    if (auto r = apply(e); !r) return tl::unexpected(r.error());
                break;
        }
    }

    // Defaults and token expansion, once every value is known.
    host_config& c = st.cfg;
    c.hostname = st.current_hostname();
    if (!st.obtained[k_user]) c.user = ctx_.local_user;

    const std::string port_str = std::to_string(c.port);
    token_fn values = [&](char t) -> std::string {
        switch (t) {
            case 'd':
                return ctx_.home;
            case 'u':
                return ctx_.local_user;
            case 'h':
                return c.hostname;
            case 'n':
                return c.alias;
            case 'r':
                return c.user;
            case 'p':
                return port_str;
            case 'l':
                return ctx_.local_hostname;
            case 'L':
                return short_hostname(ctx_.local_hostname);
            case 'C':
                return sha1_hex(ctx_.local_hostname + c.hostname + port_str + c.user);
            default:
                return {};
        }
    };
    auto expand = [&](const std::string& in,
                      const std::string& origin) -> core::result<std::string> {
        auto r = expand_tokens(in, path_tokens, true, &values, ctx_);
        if (!r) return tl::unexpected(at(origin, r.error()));
        return r;
    };
    auto expand_all = [&](const std::vector<resolve_state::raw_path>& in,
                          std::vector<std::string>& out) -> core::result<void> {
        for (const auto& p : in) {
            auto r = expand(p.value, p.origin);
            if (!r) return tl::unexpected(r.error());
            out.push_back(std::move(*r));
        }
        return {};
    };

    if (st.raw_identity_files.empty()) {
        for (const char* name : {"id_ed25519", "id_ecdsa", "id_rsa"})
            c.identity_files.push_back(ctx_.home + "/.ssh/" + name);
        c.identity_files_are_defaults = true;
    } else if (auto r = expand_all(st.raw_identity_files, c.identity_files); !r) {
        return tl::unexpected(r.error());
    }
    if (auto r = expand_all(st.raw_certificate_files, c.certificate_files); !r)
        return tl::unexpected(r.error());
    if (st.raw_user_known_hosts) {
        if (auto r = expand_all(*st.raw_user_known_hosts, c.user_known_hosts_files); !r)
            return tl::unexpected(r.error());
    } else {
        c.user_known_hosts_files = {ctx_.home + "/.ssh/known_hosts",
                                    ctx_.home + "/.ssh/known_hosts2"};
    }
    if (!st.obtained[k_global_known_hosts_file])
        c.global_known_hosts_files = {"/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"};
    if (c.identity_agent && *c.identity_agent != "none" && *c.identity_agent != "SSH_AUTH_SOCK" &&
        (*c.identity_agent)[0] != '$') {
        auto r = expand(*c.identity_agent, st.identity_agent_origin);
        if (!r) return tl::unexpected(r.error());
        c.identity_agent = std::move(*r);
    }
    if (c.forward_agent && *c.forward_agent != "yes" && (*c.forward_agent)[0] != '$') {
        auto r = expand(*c.forward_agent, st.forward_agent_origin);
        if (!r) return tl::unexpected(r.error());
        c.forward_agent = std::move(*r);
    }
    return std::move(c);
}

}  // namespace tunnel::ssh
