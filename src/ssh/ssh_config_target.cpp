// Resolving a destination: parse_target() for what the user typed, and
// ssh_config::resolve(), which walks the loaded entries for one alias (Host
// and Match blocks, first obtained value wins), then applies OpenSSH's
// defaults and expands tokens.
#include <cctype>
#include <tuple>

#include "ssh/ssh_config.hpp"
#include "ssh/ssh_config_keywords.hpp"
#include "ssh/ssh_config_match.hpp"
#include "ssh/ssh_config_syntax.hpp"

namespace tunnel::ssh {

namespace {

using core::errc;
using core::fail;
using entry = ssh_config::entry;
using config_keywords::apply_option;
using config_keywords::at;
using config_keywords::resolve_state;
using config_match::host_matches;
using config_match::match_matches;
using namespace config_syntax;

std::string short_hostname(const std::string& h) {
    return h.substr(0, h.find('.'));
}

}  // namespace

// ---------------------------------------------------------------------------
// parse_target

core::result<target> parse_target(std::string_view text) {
    const std::string shown = quoted_config_value(text);
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
                return fail(errc::invalid_argument, "unexpected " + quoted_config_value(after) +
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
                "invalid port " + quoted_config_value(port) + " in " + shown +
                    ": must be a number from 1 to 65535 (write host:2222, or omit :port for 22)");
        t.port = static_cast<uint16_t>(*p);
    }
    return t;
}

// ---------------------------------------------------------------------------
// ssh_config::resolve

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
    if (c.proxy_command) {
        auto r = expand_tokens(*c.proxy_command, proxy_command_tokens, false, &values, ctx_);
        if (!r) return tl::unexpected(at(st.proxy_command_origin, r.error()));
        c.proxy_command = std::move(*r);
    }
    return std::move(c);
}

}  // namespace tunnel::ssh
