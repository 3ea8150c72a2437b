#include "relay/relay_client.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "core/encoding.hpp"
#include "relay/public_route.hpp"
#include "relay/publish_request.hpp"
#include "relay/relay_failover.hpp"
#include "relay/tcp_service.hpp"
#include "relay/token_minter.hpp"
#include "transport/websocket_stream.hpp"

namespace tunnel::relay {

using forward::forward_kind;
using forward::forward_spec;
using forward::forward_stats;
using forward::supervisor_options;

namespace {

// First reverse-forward port; each exposed name gets its own (80, 81, ...)
// so the relay's forwarded-tcpip channels say which name they are for.
constexpr uint16_t first_port = 80;

// ":8443" from "https://relay:8443/t/acme/", "" when the URL has no port.
std::string port_suffix(std::string_view url) {
    auto start = url.find("://");
    if (start == std::string_view::npos) return {};
    auto authority = url.substr(start + 3);
    authority = authority.substr(0, authority.find('/'));
    auto bracket = authority.rfind(']');
    auto colon = authority.rfind(':');
    if (colon == std::string_view::npos || (bracket != std::string_view::npos && colon < bracket))
        return {};
    return std::string(authority.substr(colon));
}

}  // namespace

namespace {

// --expose / --expose-tcp NAME=HOST:PORT.
core::result<expose_spec> parse_expose_as(std::string_view text, std::string_view flag, bool tcp) {
    const auto eq = text.find('=');
    if (eq == std::string_view::npos)
        return core::fail(core::errc::invalid_argument,
                          fmt::format("{} '{}': write NAME=HOST:PORT, e.g. {} {}=127.0.0.1:{}",
                                      flag, text, flag, tcp ? "ssh" : "llm", tcp ? "22" : "11434"));
    expose_spec e;
    e.text = std::string(text);
    e.name = std::string(text.substr(0, eq));
    std::transform(e.name.begin(), e.name.end(), e.name.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    if (!valid_label(e.name))
        return core::fail(
            core::errc::invalid_argument,
            fmt::format("{} '{}': the name '{}' must be a DNS label: 1 to 63 of a-z, 0-9 and '-', "
                        "not starting or ending with '-', without '--'",
                        flag, text, e.name));
    std::string target(text.substr(eq + 1));
    if (!target.empty() &&
        std::all_of(target.begin(), target.end(), [](unsigned char c) { return std::isdigit(c); }))
        target = "127.0.0.1:" + target;  // a bare port is on this machine
    auto spec = forward::parse_forward_spec(forward_kind::remote,
                                            fmt::format("{}:{}:{}", e.name, first_port, target));
    if (!spec || spec->target.is_unix() || spec->target.port == 0)
        return core::fail(
            core::errc::invalid_argument,
            fmt::format("{} '{}': '{}' is not HOST:PORT (e.g. 127.0.0.1:8080, [::1]:8080)", flag,
                        text, target));
    e.target = spec->target;
    e.tcp = tcp;
    return e;
}

}  // namespace

core::result<expose_spec> parse_expose(std::string_view text) {
    return parse_expose_as(text, "--expose", false);
}

core::result<expose_spec> parse_expose_tcp(std::string_view text) {
    return parse_expose_as(text, "--expose-tcp", true);
}

core::result<void> apply_access(std::vector<expose_spec>& exposes, const access_flags& flags) {
    auto bad = [](std::string message) {
        return core::fail(core::errc::invalid_argument, std::move(message));
    };
    std::optional<access_mode> all;
    std::map<std::string, access_mode> per_name;
    for (const auto& text : flags.access) {
        const auto eq = text.find('=');
        auto mode = parse_access_mode(eq == std::string::npos ? text : text.substr(eq + 1));
        if (!mode) return bad(fmt::format("--access '{}': {}", text, mode.error().message));
        if (eq == std::string::npos) {
            if (all)
                return bad("--access MODE is given twice; give it once, or NAME=MODE per name");
            all = *mode;
            continue;
        }
        const auto name = text.substr(0, eq);
        if (std::none_of(exposes.begin(), exposes.end(),
                         [&](const expose_spec& e) { return e.name == name; }))
            return bad(fmt::format("--access '{}': no --expose publishes '{}'", text, name));
        if (!per_name.emplace(name, *mode).second)
            return bad(fmt::format("--access: '{}' is given twice", name));
    }
    std::optional<ip_allow_list> ips;
    if (!flags.allow_ips.empty()) {
        std::vector<std::string> cidrs;
        for (const auto& list : flags.allow_ips)
            for (auto& c : split_allow_list(list)) cidrs.push_back(std::move(c));
        auto parsed = ip_allow_list::parse(cidrs);
        if (!parsed) return bad("--allow-ip: " + parsed.error().message);
        ips = std::move(*parsed);
    }
    std::shared_ptr<const htpasswd> users;
    if (!flags.htpasswd_file.empty()) {
        auto list = htpasswd::load(flags.htpasswd_file);
        if (!list) return bad("--htpasswd: " + list.error().message);
        if (list->entries().size() > max_publish_users)
            return bad(
                fmt::format("--htpasswd {}: {} users; at most {} travel with a publish "
                            "request (keep larger lists in the relay's config)",
                            flags.htpasswd_file, list->entries().size(), max_publish_users));
        users = std::make_shared<const htpasswd>(std::move(*list));
    }
    bool uses_ip = false, uses_basic = false;
    for (auto& e : exposes) {
        if (e.tcp) {  // raw TCP: the relay's caps and the token's allow list only
            if (per_name.count(e.name))
                return bad(
                    fmt::format("--access: '{}' is a raw TCP name (--expose-tcp); visitor "
                                "access is for HTTP names",
                                e.name));
            e.access.reset();
            continue;
        }
        auto it = per_name.find(e.name);
        std::optional<access_mode> mode = it != per_name.end() ? it->second : all;
        if (!mode) {
            e.access.reset();
            continue;
        }
        access_policy p;
        p.mode = *mode;
        if (*mode == access_mode::ip) {
            if (!ips)
                return bad(
                    fmt::format("--access ip for '{}' needs --allow-ip CIDR,... (the "
                                "networks to let in)",
                                e.name));
            p.allow_ips = *ips;
            uses_ip = true;
        }
        if (*mode == access_mode::basic) {
            if (!users)
                return bad(fmt::format(
                    "--access basic for '{}' needs --htpasswd FILE (user:hash lines, e.g. from "
                    "`htpasswd -nB USER`)",
                    e.name));
            p.users = users;
            uses_basic = true;
        }
        // What the relay will parse: refuse here what it would refuse there.
        auto wire = encode_publish_request(e.name, p);
        if (auto back = parse_publish_request(wire); !back)
            return bad(fmt::format("--expose {}: {}", e.name, back.error().message));
        e.access = std::move(p);
    }
    if (ips && !uses_ip) return bad("--allow-ip is for names published with --access ip");
    if (users && !uses_basic) return bad("--htpasswd is for names published with --access basic");
    return {};
}

core::result<std::string> tenant_of_token(std::string_view token) {
    const auto a = token.find('.');
    const auto b = a == std::string_view::npos ? a : token.find('.', a + 1);
    if (b == std::string_view::npos || token.find('.', b + 1) != std::string_view::npos)
        return core::fail(core::errc::invalid_argument,
                          "the token is not a JWT (expected three dot-separated parts); mint one "
                          "with 'tunnel token'");
    auto payload = core::base64url_decode(token.substr(a + 1, b - a - 1));
    auto claims = payload ? nlohmann::json::parse(*payload, nullptr, false) : nlohmann::json();
    if (!claims.is_object())
        return core::fail(core::errc::invalid_argument,
                          "the token's payload is not a JSON object; is it a JWT?");
    auto sub = claims.find("sub");
    if (sub == claims.end() || !sub->is_string() || !valid_label(sub->get<std::string>()))
        return core::fail(
            core::errc::invalid_argument,
            "the token has no valid 'sub' claim (the tenant: 1 to 63 of a-z, 0-9 and '-')");
    return sub->get<std::string>();
}

std::vector<std::string> public_urls(const transport::ws_attach_info& attach,
                                     std::string_view name) {
    std::vector<std::string> urls;
    // The relay's URL for each published name, "{name}" standing for it.
    if (const auto at = attach.public_url.find("{name}"); at != std::string::npos) {
        std::string url = attach.public_url;
        url.replace(at, 6, name);
        return {url};
    }
    // Older relays: a path-routing base, and Tunnel-Domain for host routing.
    if (!attach.domain.empty() && !attach.tenant.empty()) {
        const bool plain = attach.public_url.rfind("http://", 0) == 0;
        urls.push_back(fmt::format("{}://{}--{}.{}{}/", plain ? "http" : "https", name,
                                   attach.tenant, attach.domain, port_suffix(attach.public_url)));
    }
    if (!attach.public_url.empty()) {
        std::string base = attach.public_url;
        if (base.back() != '/') base += '/';
        urls.push_back(fmt::format("{}{}/", base, name));
    }
    return urls;
}

std::vector<forward_spec> publish_forwards(const std::vector<expose_spec>& exposes) {
    std::vector<forward_spec> out;
    for (std::size_t i = 0; i < exposes.size(); ++i) {
        const auto& e = exposes[i];
        forward_spec s;
        s.kind = forward_kind::remote;
        s.listen.host =
            e.tcp ? encode_tcp_publish(e.name) : encode_publish_request(e.name, e.access);
        // A raw TCP name asks for port 0: the relay answers with its public port.
        s.listen.port = e.tcp ? 0 : static_cast<uint16_t>(first_port + i);
        s.target = e.target;
        s.text = (e.tcp ? "--expose-tcp " : "--expose ") + e.text;
        out.push_back(std::move(s));
    }
    return out;
}

std::string default_relay_known_hosts() {
    if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg)
        return fmt::format("{}/tunnel/relay_known_hosts", xdg);
    const char* home = std::getenv("HOME");
    return fmt::format("{}/.config/tunnel/relay_known_hosts", home && *home ? home : ".");
}

core::result<supervisor_options> relay_supervisor_options(relay_client_options options) {
    if (options.exposes.empty())
        return core::fail(core::errc::invalid_argument,
                          "nothing to publish: give at least one --expose (or --expose-tcp) "
                          "NAME=HOST:PORT");
    std::set<std::string> names;
    for (const auto& e : options.exposes)
        if (!names.insert(e.name).second)
            return core::fail(
                core::errc::invalid_argument,
                fmt::format("--expose: the name '{}' is given twice; each name is published once",
                            e.name));
    if (options.exposes.size() > 1000u)
        return core::fail(core::errc::invalid_argument, "--expose: at most 1000 names per tunnel");
    if (options.ws.token.empty())
        return core::fail(core::errc::invalid_argument,
                          "the relay needs a token: pass --token-file FILE");
    if (auto plain = transport::check_plaintext(options.url, true, options.ws.allow_plaintext);
        !plain)
        return tl::unexpected(plain.error());
    auto tenant = tenant_of_token(options.ws.token);
    if (!tenant) return tl::unexpected(tenant.error());
    if (options.relay_host_key && options.relay_host_key->rfind("SHA256:", 0) != 0)
        return core::fail(
            core::errc::invalid_argument,
            fmt::format(
                "--relay-host-key '{}': give the SHA256:... fingerprint the relay prints at start",
                *options.relay_host_key));
    std::error_code ec;
    std::filesystem::create_directories(
        std::filesystem::path(options.known_hosts_file).parent_path(), ec);

    supervisor_options o;
    auto& t = o.target;
    t.host = options.url.host;
    t.port = options.url.port;
    t.user = *tenant;
    t.use_agent = false;
    t.pubkey_authentication = false;
    t.password_authentication = false;
    t.batch_mode = true;  // the WebSocket is authenticated; SSH auth is `none`
    t.host_keys = ssh::host_key_policy::accept_new;
    t.user_known_hosts_files = {options.known_hosts_file};
    t.global_known_hosts_files = {};
    t.host_key_fingerprint = options.relay_host_key;
    t.server_alive_interval = options.keepalive;
    t.server_alive_count_max = 3;
    t.ciphers = options.ciphers;
    t.on_host_key_recorded = [on_event = options.on_event](const std::string& name,
                                                           const std::string& fingerprint,
                                                           const std::string& file) {
        if (!on_event) return;
        relay_event ev;
        ev.what = relay_event::kind::host_key_recorded;
        ev.relay = name;
        ev.fingerprint = fingerprint;
        ev.known_hosts_file = file;
        on_event(ev);
    };
    t.connect_timeout = options.ws.connect_timeout + std::chrono::seconds(15);

    // What the latest attach said, for the URLs printed once a name is up.
    auto attached = std::make_shared<transport::ws_attach_info>();
    // One lease across every reconnect: the relay gives the names back.
    if (!options.ws.lease) options.ws.lease = std::make_shared<transport::ws_lease>();
    auto on_event = options.on_event ? options.on_event : [](const relay_event&) {};
    const std::string user = *tenant;
    auto on_attach = [attached, on_event, user](const transport::ws_attach_info& info,
                                                const std::string& relay_url) {
        *attached = info;
        if (!info.tenant.empty() && info.tenant != user)
            spdlog::warn("the relay names the tenant '{}' but the token says '{}'", info.tenant,
                         user);
        relay_event ev;
        ev.what = relay_event::kind::attached;
        ev.tenant = info.tenant.empty() ? user : info.tenant;
        ev.lease_grace = info.leased ? info.lease_grace : std::chrono::seconds(0);
        ev.relay = relay_url;
        on_event(ev);
    };
    if (options.failover) {
        // One opener per relay; the failover points the target at one of
        // them before each attempt (and knows which one attached).
        std::vector<ssh::stream_opener> openers;
        const auto& relays = options.failover->relays();
        for (std::size_t i = 0; i < relays.size(); ++i)
            openers.push_back(transport::websocket_opener(
                relays[i], options.ws,
                [on_attach, i, fo = std::weak_ptr<relay_failover>(options.failover),
                 url = describe_relay(relays[i])](const transport::ws_attach_info& info) {
                    if (auto f = fo.lock()) f->attached(i);
                    on_attach(info, url);
                }));
        options.failover->set_openers(std::move(openers));
        o.before_connect = [fo = options.failover](ssh::connect_options& target) {
            fo->before_connect(target);
        };
    } else {
        t.open_stream = transport::websocket_opener(
            options.url, options.ws,
            [on_attach](const transport::ws_attach_info& info) { on_attach(info, {}); });
    }

    o.forwards = publish_forwards(options.exposes);
    // The name and access mode of a forward, from its bind address.
    auto describe = [](const forward_stats& fs, relay_event& ev) {
        auto request = parse_publish_request(fs.spec.listen.host);
        ev.name =
            request ? request->name : fs.spec.listen.host.substr(0, fs.spec.listen.host.find(';'));
        ev.access = request && request->access ? request->access->describe() : std::string();
        ev.target = fs.spec.target.to_string();
    };
    // Raw TCP names are reached at the relay's host, on the port it assigned.
    const std::string relay_host = options.url.host.find(':') != std::string::npos
                                       ? "[" + options.url.host + "]"
                                       : options.url.host;
    o.on_remote_listening = [attached, on_event, user, describe,
                             relay_host](const forward_stats& fs) {
        relay_event ev;
        ev.what = relay_event::kind::published;
        ev.tenant = attached->tenant.empty() ? user : attached->tenant;
        describe(fs, ev);
        if (is_tcp_publish(fs.spec.listen.host)) {
            ev.tcp = true;
            ev.tcp_port = fs.bound_port.value_or(0);
            ev.urls = {fmt::format("tcp://{}:{}", relay_host, ev.tcp_port)};
        } else {
            ev.urls = public_urls(*attached, ev.name);
        }
        on_event(ev);
    };
    o.on_remote_refused = [on_event, user, describe](const forward_stats& fs) {
        relay_event ev;
        ev.what = relay_event::kind::refused;
        ev.tenant = user;
        describe(fs, ev);
        ev.tcp = is_tcp_publish(fs.spec.listen.host);
        ev.message = ev.tcp ? fmt::format(
                                  "the relay refused to publish raw TCP '{}': is it in the "
                                  "token's allow list, does the relay have tcp.ports, and is a "
                                  "port free? (retrying every few seconds)",
                                  ev.name)
                     : ev.access.empty()
                         ? fmt::format(
                               "the relay refused to publish '{}': is it in the token's allow "
                               "list, and does the token allow public names? (retrying every few "
                               "seconds)",
                               ev.name)
                         : fmt::format(
                               "the relay refused to publish '{}' with access {}: is it in the "
                               "token's allow list, does the token allow that access mode, and "
                               "does the relay know visitor access? (retrying every few seconds)",
                               ev.name, ev.access);
        on_event(ev);
    };
    o.backoff = options.backoff;
    o.reconnect = options.reconnect;
    return o;
}

}  // namespace tunnel::relay
