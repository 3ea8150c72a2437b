#include "link/link_config.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/yaml_config.hpp"
#include "relay/relay_client.hpp"
#include "transport/websocket_client.hpp"

namespace tunnel::link {

namespace {

constexpr std::size_t max_links = 256;
constexpr std::size_t max_transports = 16;
constexpr std::size_t max_forwards = 256;
constexpr std::size_t max_file_bytes = 1 << 20;

using core::line_of;

std::optional<transport_type> parse_type(std::string_view s) {
    if (s == "tcp") return transport_type::tcp;
    if (s == "jump") return transport_type::jump;
    if (s == "command") return transport_type::command;
    if (s == "http_connect") return transport_type::http_connect;
    if (s == "relay") return transport_type::relay;
    return std::nullopt;
}

// "host:port" or "[v6]:port" with a port 1-65535.
bool valid_host_port(std::string_view s) {
    const auto colon = s.rfind(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == s.size()) return false;
    const auto port = s.substr(colon + 1);
    if (port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return false;
    const int p = std::stoi(std::string(port));
    return p >= 1 && p <= 65535;
}

class parser {
  public:
    explicit parser(const std::string& source) : r_(source) {}

    core::result<links_file> run(std::string_view text) {
        auto root = r_.parse(text);
        if (!r_.ok()) return tl::unexpected(r_.failure());
        links_file out;
        if (!root || root.IsNull()) {
            r_.error("links", "the file is empty: it needs a `links:` mapping");
            return tl::unexpected(r_.failure());
        }
        if (r_.expect_map(root, "", {"links", "control"})) {
            if (auto links = root["links"]; !links)
                r_.error("links", "missing: name at least one link under `links:`");
            else
                read_links(links, out);
            if (auto c = root["control"]) read_control(c, out.control);
        }
        if (!r_.ok()) return tl::unexpected(r_.failure());
        return out;
    }

  private:
    void read_links(const YAML::Node& links, links_file& out) {
        if (!links.IsMap() || links.size() == 0) {
            r_.error("links", "must be a mapping of link name to link" + line_of(links));
            return;
        }
        if (links.size() > max_links) {
            r_.error("links", fmt::format("at most {} links per file", max_links));
            return;
        }
        for (const auto& kv : links) {
            auto name = kv.first.as<std::string>();
            const std::string path = "links." + name;
            if (!valid_link_name(name)) {
                r_.error(path,
                         "a link name is 1-64 letters, digits, '.', '_' or '-', starting "
                         "with a letter or digit" +
                             line_of(kv.first));
                continue;
            }
            link_config l;
            l.name = name;
            if (read_link(kv.second, path, l)) out.links.push_back(std::move(l));
        }
    }

    bool read_link(const YAML::Node& n, const std::string& path, link_config& l) {
        if (!r_.expect_map(n, path,
                           {"target", "options", "transports", "forwards", "keepalive", "failover",
                            "return_after", "start", "switch_wait", "relays", "token_file",
                            "expose", "exec_pool"})) {
            if (!n || n.IsNull()) r_.error(path, "empty: a link needs `target` (or `relays`)");
            return false;
        }
        if (auto t = n["target"]) {
            if (auto s = r_.string(t, path + ".target")) {
                if (s->empty() || s->front() == '-' ||
                    s->find_first_of(" \t\r\n") != std::string::npos)
                    r_.error(path + ".target",
                             "must be [user@]host[:port] or an ssh_config alias" + line_of(t));
                else
                    l.target = *s;
            }
        }
        if (auto rs = n["relays"]) {
            if (auto v = r_.string_list(rs, path + ".relays")) l.relays = *v;
        }
        if (auto tf = n["token_file"]) {
            if (auto s = r_.string(tf, path + ".token_file")) l.token_file = *s;
        }
        if (auto ex = n["expose"]) read_pairs(ex, path + ".expose", l.expose);
        if (!n["target"] && !n["relays"])
            r_.error(path, "needs `target` (an SSH destination) or `relays`" + line_of(n));
        if (n["target"] && n["relays"])
            r_.error(path,
                     "has both `target` and `relays`: a link reaches one destination" + line_of(n));
        if (auto o = n["options"]) read_pairs(o, path + ".options", l.options);
        if (l.is_relay()) {
            read_relay_link(n, path, l);
        } else {
            for (auto k : {"token_file", "expose"})
                if (n[k])
                    r_.error(
                        path + "." + k,
                        fmt::format("belongs to a relay link (with `relays`){}", line_of(n[k])));
            if (auto ts = n["transports"])
                read_transports(ts, path + ".transports", l);
            else {
                transport_config tcp;  // the default: one tcp transport
                tcp.name = "tcp";
                l.transports.push_back(std::move(tcp));
            }
            for (std::size_t i = 0; i < l.transports.size(); ++i)
                if (l.transports[i].type == transport_type::relay)
                    r_.error(fmt::format("{}.transports[{}]", path, i),
                             "a relay transport belongs to a relay link: list the relays under "
                             "`relays` (with token_file and expose) instead of `target`" +
                                 line_of(n["transports"]));
        }
        if (auto fs = n["forwards"]) read_forwards(fs, path + ".forwards", l);
        if (auto k = n["keepalive"]) {
            if (auto d = r_.duration(k, path + ".keepalive")) {
                if (*d < std::chrono::milliseconds(100) || *d > std::chrono::hours(1))
                    r_.error(path + ".keepalive", "must be from 100ms to 1h" + line_of(k));
                else
                    l.keepalive = *d;
            }
        }
        if (auto f = n["failover"]) {
            if (r_.expect_map(f, path + ".failover", {"after_failures", "rtt_above"})) {
                if (auto a = f["after_failures"])
                    if (auto v = r_.integer(a, path + ".failover.after_failures", 1, 100))
                        l.after_failures = static_cast<int>(*v);
                if (auto a = f["rtt_above"]) {
                    if (auto d = r_.duration(a, path + ".failover.rtt_above")) {
                        if (d->count() <= 0)
                            r_.error(path + ".failover.rtt_above", "must be > 0" + line_of(a));
                        else
                            l.rtt_above = *d;
                    }
                }
            } else if (f.IsNull()) {
                r_.error(path + ".failover", "empty: give after_failures and/or rtt_above");
            }
        }
        if (auto ra = n["return_after"])
            if (auto v = r_.integer(ra, path + ".return_after", 1, 1000))
                l.return_after = static_cast<int>(*v);
        if (auto st = n["start"]) {
            if (auto s = r_.string(st, path + ".start")) {
                if (*s == "parallel")
                    l.start = start_policy::parallel;
                else if (*s == "on_demand")
                    l.start = start_policy::on_demand;
                else
                    r_.error(path + ".start", "must be parallel or on_demand" + line_of(st));
            }
        }
        if (auto ep = n["exec_pool"]) {
            if (auto b = r_.boolean(ep, path + ".exec_pool")) l.exec_pool = *b;
            if (l.is_relay() && l.exec_pool)
                r_.error(path + ".exec_pool",
                         "a relay link has no SSH target to run commands on" + line_of(ep));
        }
        if (auto sw = n["switch_wait"]) {
            if (auto d = r_.duration(sw, path + ".switch_wait")) {
                if (*d > std::chrono::minutes(10))
                    r_.error(path + ".switch_wait", "must be at most 10m" + line_of(sw));
                else
                    l.switch_wait = *d;
            }
        }
        return true;
    }

    // A mapping of name to scalar ({Port: 22, ...}), kept in file order.
    void read_pairs(const YAML::Node& n, const std::string& path,
                    std::vector<std::pair<std::string, std::string>>& out) {
        if (!n.IsMap()) {
            r_.error(path, "must be a mapping of key: value" + line_of(n));
            return;
        }
        for (const auto& kv : n) {
            const auto key = kv.first.as<std::string>();
            const auto kpath = path + "." + key;
            if (key.empty() || key.find_first_of("= \t\r\n") != std::string::npos) {
                r_.error(kpath, "not a valid key" + line_of(kv.first));
                continue;
            }
            if (auto v = r_.string(kv.second, kpath)) {
                if (v->find_first_of("\r\n") != std::string::npos)
                    r_.error(kpath, "must be one line" + line_of(kv.second));
                else
                    out.emplace_back(key, *v);
            }
        }
    }

    // A relay link: one relay transport per entry of `relays` (named after
    // the relay's host, or relayN when two share one), `token_file`
    // required, and the `expose` names published as reverse forwards
    // through whichever relay is active.
    void read_relay_link(const YAML::Node& n, const std::string& path, link_config& l) {
        if (n["transports"])
            r_.error(path + ".transports",
                     "a relay link's transports are its `relays`, in priority order" +
                         line_of(n["transports"]));
        if (n["forwards"])
            r_.error(path + ".forwards",
                     "a relay link publishes its `expose` names; -L/-R/-D forwards need an SSH "
                     "`target`" +
                         line_of(n["forwards"]));
        if (l.token_file.empty())
            r_.error(path + ".token_file",
                     "missing: a relay link needs the file holding its token" + line_of(n));
        if (l.relays.size() > max_transports)
            r_.error(path + ".relays", fmt::format("at most {} relays", max_transports));
        for (std::size_t i = 0; i < l.relays.size() && i < max_transports; ++i) {
            const auto& text = l.relays[i];
            auto url = transport::parse_ws_url(text);
            if (!url) {
                r_.error(fmt::format("{}.relays[{}]", path, i),
                         url.error().message + line_of(n["relays"]));
                continue;
            }
            transport_config tc;
            tc.type = transport_type::relay;
            tc.url = text;
            tc.name = valid_link_name(url->host) ? url->host : fmt::format("relay{}", i);
            for (const auto& other : l.transports)
                if (other.name == tc.name) tc.name = fmt::format("relay{}", i);
            l.transports.push_back(std::move(tc));
        }
        if (l.expose.empty())
            r_.error(
                path + ".expose",
                "missing: name the services to publish, e.g. {llm: 127.0.0.1:11434}" + line_of(n));
        std::vector<relay::expose_spec> exposes;
        for (const auto& [name, target] : l.expose) {
            auto e = relay::parse_expose(name + "=" + target);
            if (!e) {
                r_.error(path + ".expose." + name, e.error().message + line_of(n["expose"]));
                continue;
            }
            for (const auto& other : exposes)
                if (other.name == e->name)
                    r_.error(path + ".expose." + name, "given twice" + line_of(n["expose"]));
            exposes.push_back(std::move(*e));
        }
        l.forwards = relay::publish_forwards(exposes);
    }

    // http_connect's credentials: a file path or an environment variable's
    // name, at most one; the YAML never holds them.
    void read_proxy_credentials(const YAML::Node& t, const std::string& tpath,
                                transport_config& tc) {
        const auto file_path = tpath + ".proxy_credentials_file";
        const auto env_path = tpath + ".proxy_credentials_env";
        if (auto f = t["proxy_credentials_file"])
            if (auto s = r_.string(f, file_path)) {
                if (s->empty() || s->find_first_of("\r\n") != std::string::npos)
                    r_.error(file_path,
                             "must be the path of a file holding user:password" + line_of(f));
                else
                    tc.proxy_credentials_file = *s;
            }
        if (auto e = t["proxy_credentials_env"])
            if (auto s = r_.string(e, env_path)) {
                const bool name_ok =
                    !s->empty() && s->size() <= 128 &&
                    !std::isdigit(static_cast<unsigned char>((*s)[0])) &&
                    std::all_of(s->begin(), s->end(), [](char c) {
                        return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
                    });
                if (!name_ok)
                    r_.error(env_path,
                             "must be the name of an environment variable (letters, digits, "
                             "'_'; e.g. PROXY_CREDENTIALS) that holds user:password, not the "
                             "credentials themselves" +
                                 line_of(e));
                else
                    tc.proxy_credentials_env = *s;
            }
        if (t["proxy_credentials_file"] && t["proxy_credentials_env"])
            r_.error(tpath, "proxy_credentials_file and proxy_credentials_env: set one of them" +
                                line_of(t));
    }

    void read_transports(const YAML::Node& ts, const std::string& path, link_config& l) {
        if (!ts.IsSequence() || ts.size() == 0) {
            r_.error(path, "must be a non-empty list of {type: ...}" + line_of(ts));
            return;
        }
        if (ts.size() > max_transports) {
            r_.error(path, fmt::format("at most {} transports", max_transports) + line_of(ts));
            return;
        }
        for (std::size_t i = 0; i < ts.size(); ++i) {
            const auto tpath = fmt::format("{}[{}]", path, i);
            const auto& t = ts[i];
            if (!r_.expect_map(t, tpath,
                               {"type", "name", "via", "command", "proxy", "url", "address",
                                "proxy_credentials_file", "proxy_credentials_env"})) {
                if (!t || t.IsNull()) r_.error(tpath, "empty: needs `type`");
                continue;
            }
            transport_config tc;
            auto type_node = t["type"];
            if (!type_node) {
                r_.error(tpath + ".type",
                         "missing: tcp, jump, command, http_connect or relay" + line_of(t));
                continue;
            }
            auto type_text = r_.string(type_node, tpath + ".type");
            if (!type_text) continue;
            auto type = parse_type(*type_text);
            if (!type) {
                r_.error(tpath + ".type", fmt::format("unknown transport `{}`: use tcp, jump, "
                                                      "command, http_connect or relay{}",
                                                      *type_text, line_of(type_node)));
                continue;
            }
            tc.type = *type;
            tc.name = std::string(to_string(tc.type));
            if (auto nm = t["name"])
                if (auto s = r_.string(nm, tpath + ".name")) {
                    if (!valid_link_name(*s))
                        r_.error(tpath + ".name",
                                 "1-64 letters, digits, '.', '_' or '-'" + line_of(nm));
                    else
                        tc.name = *s;
                }
            auto need = [&](const char* key, std::string& into, const char* what) {
                auto v = t[key];
                if (!v) {
                    r_.error(tpath + "." + key, fmt::format("missing: a {} transport needs {}{}",
                                                            *type_text, what, line_of(t)));
                    return;
                }
                if (auto s = r_.string(v, tpath + "." + key)) {
                    if (s->empty() || s->find_first_of("\r\n") != std::string::npos)
                        r_.error(tpath + "." + key, fmt::format("must be {}{}", what, line_of(v)));
                    else
                        into = *s;
                }
            };
            auto refuse = [&](const char* key) {
                if (t[key])
                    r_.error(tpath + "." + key, fmt::format("not used by a {} transport{}",
                                                            *type_text, line_of(t[key])));
            };
            if (tc.type != transport_type::http_connect)
                for (auto k : {"proxy_credentials_file", "proxy_credentials_env"}) refuse(k);
            switch (tc.type) {
                case transport_type::tcp:
                    if (auto a = t["address"]) {
                        if (auto v = r_.string(a, tpath + ".address")) {
                            if (!valid_host_port(*v))
                                r_.error(tpath + ".address",
                                         "must be host:port (port 1-65535)" + line_of(a));
                            else
                                tc.address = *v;
                        }
                    }
                    for (auto k : {"via", "command", "proxy", "url"}) refuse(k);
                    break;
                case transport_type::jump:
                    need("via", tc.via, "the bastion ([user@]host[:port] or an alias)");
                    for (auto k : {"command", "proxy", "url", "address"}) refuse(k);
                    break;
                case transport_type::command:
                    need("command", tc.command, "the program to run (one line)");
                    for (auto k : {"via", "proxy", "url", "address"}) refuse(k);
                    break;
                case transport_type::http_connect:
                    need("proxy", tc.proxy, "the proxy's host:port");
                    if (!tc.proxy.empty() && !valid_host_port(tc.proxy)) {
                        r_.error(tpath + ".proxy",
                                 "must be host:port (port 1-65535)" + line_of(t["proxy"]));
                    }
                    for (auto k : {"via", "command", "url", "address"}) refuse(k);
                    read_proxy_credentials(t, tpath, tc);
                    break;
                case transport_type::relay:
                    need("url", tc.url, "the relay's wss:// URL");
                    for (auto k : {"via", "command", "proxy", "address"}) refuse(k);
                    break;
            }
            for (const auto& other : l.transports)
                if (other.name == tc.name)
                    r_.error(tpath + ".name",
                             fmt::format("two transports are named `{}`: give one a `name`{}",
                                         tc.name, line_of(t)));
            l.transports.push_back(std::move(tc));
        }
    }

    void read_forwards(const YAML::Node& fs, const std::string& path, link_config& l) {
        if (!fs.IsSequence()) {
            r_.error(path, "must be a list like [\"-L 8080:localhost:80\"]" + line_of(fs));
            return;
        }
        if (fs.size() > max_forwards) {
            r_.error(path, fmt::format("at most {} forwards", max_forwards));
            return;
        }
        for (std::size_t i = 0; i < fs.size(); ++i) {
            const auto fpath = fmt::format("{}[{}]", path, i);
            auto s = r_.string(fs[i], fpath);
            if (!s) continue;
            std::string_view text = *s;
            while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
            forward::forward_kind kind{};
            if (text.starts_with("-L"))
                kind = forward::forward_kind::local;
            else if (text.starts_with("-R"))
                kind = forward::forward_kind::remote;
            else if (text.starts_with("-D"))
                kind = forward::forward_kind::dynamic;
            else {
                r_.error(fpath,
                         "must start with -L, -R or -D, as on ssh's command line" + line_of(fs[i]));
                continue;
            }
            text.remove_prefix(2);
            while (!text.empty() && (text.front() == ' ' || text.front() == '='))
                text.remove_prefix(1);
            while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
            auto spec = forward::parse_forward_spec(kind, text);
            if (!spec) {
                r_.error(fpath, spec.error().message + line_of(fs[i]));
                continue;
            }
            spec->text = *s;
            l.forwards.push_back(std::move(*spec));
        }
    }

    void read_control(const YAML::Node& c, control_config& out) {
        if (!r_.expect_map(c, "control", {"socket", "status_addr"})) return;
        if (auto s = c["socket"]) {
            if (auto v = r_.string(s, "control.socket")) {
                if (v->empty() || v->size() > 100)
                    r_.error("control.socket",
                             "must be a path of 1-100 bytes (a Unix socket path)" + line_of(s));
                else
                    out.socket = *v;
            }
        }
        if (auto a = c["status_addr"]) {
            if (auto v = r_.string(a, "control.status_addr")) {
                if (!valid_host_port(*v))
                    r_.error("control.status_addr", "must be host:port" + line_of(a));
                else
                    out.status_addr = *v;
            }
        }
    }

    core::yaml_reader r_;
};

}  // namespace

std::string_view to_string(transport_type type) noexcept {
    switch (type) {
        case transport_type::tcp:
            return "tcp";
        case transport_type::jump:
            return "jump";
        case transport_type::command:
            return "command";
        case transport_type::http_connect:
            return "http_connect";
        case transport_type::relay:
            return "relay";
    }
    return "?";
}

bool valid_link_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > 64) return false;
    auto alnum = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    };
    if (!alnum(name.front())) return false;
    return std::all_of(name.begin(), name.end(),
                       [&](char c) { return alnum(c) || c == '.' || c == '_' || c == '-'; });
}

const link_config* links_file::find(std::string_view name) const noexcept {
    for (const auto& l : links)
        if (l.name == name) return &l;
    return nullptr;
}

core::result<links_file> parse_links_file(std::string_view text, const std::string& source) {
    if (text.size() > max_file_bytes)
        return core::fail(core::errc::invalid_argument,
                          fmt::format("{}: larger than {} bytes", source, max_file_bytes));
    return parser(source).run(text);
}

core::result<links_file> load_links_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return core::fail(core::errc::not_found,
                          fmt::format("cannot read {}: check the path (tunnel up FILE)", path));
    std::ostringstream ss;
    ss << in.rdbuf();
    return parse_links_file(ss.str(), path);
}

}  // namespace tunnel::link
