#include "link/link_resolve.hpp"

#include <cctype>
#include <cstdlib>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "relay/relay_client.hpp"
#include "ssh/tcp_connect.hpp"
#include "transport/http_connect.hpp"

namespace tunnel::link {

namespace {

std::pair<std::string, uint16_t> split_host_port(const std::string& s) {
    const auto colon = s.rfind(':');
    auto host = s.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    return {host, static_cast<uint16_t>(std::stoi(s.substr(colon + 1)))};
}

// A plain TCP connection to another address of the server (a coroutine of
// its own: the opener's lambda returns it with everything copied in).
asio::awaitable<core::result<ssh::byte_stream>> open_tcp(asio::any_io_executor ex,
                                                         ssh::time_point deadline, std::string host,
                                                         uint16_t port) {
    auto fd = co_await ssh::tcp_connect(ex, host, port, deadline);
    if (!fd) co_return tl::unexpected(fd.error());
    co_return ssh::byte_stream{*fd, nullptr};
}

// ssh_config keywords that say where to connect: not passed on to jump hops.
bool is_destination_keyword(const std::string& k) {
    std::string lower;
    for (char c : k) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return lower == "port" || lower == "hostname" || lower == "user" || lower == "proxyjump" ||
           lower == "proxycommand" || lower == "hostkeyalias";
}

// `~/x` from HOME, as in ssh_config paths.
std::string expand_home(const std::string& path) {
    if (path.rfind("~/", 0) != 0) return path;
    const char* home = std::getenv("HOME");
    return std::string(home && *home ? home : "") + path.substr(1);
}

// A relay transport: the SSH session `tunnel connect` makes to that relay
// (WebSocket with the link's token, the tenant from the token, the relay's
// host key recorded on first use), without its own keepalive: the link's
// probes watch it.
core::result<ssh::connect_options> relay_options(const link_config& link,
                                                 const transport_config& t) {
    relay::relay_client_options ro;
    auto url = transport::parse_ws_url(t.url);
    if (!url) return tl::unexpected(url.error());
    ro.url = std::move(*url);
    auto token = transport::read_token_file(expand_home(link.token_file));
    if (!token)
        return core::fail(token.error().code,
                          fmt::format("links.{}.token_file: {}", link.name, token.error().message));
    ro.ws.token = std::move(*token);
    for (const auto& [name, target] : link.expose) {
        auto e = relay::parse_expose(name + "=" + target);
        if (!e) return tl::unexpected(e.error());
        ro.exposes.push_back(std::move(*e));
    }
    const std::string link_name = link.name;
    ro.on_event = [link_name](const relay::relay_event& ev) {
        if (ev.what == relay::relay_event::kind::host_key_recorded)
            spdlog::warn(
                "link {}: first connection to {}: its SSH host key {} is recorded in {} "
                "(trust on first use); check it against the fingerprint the relay "
                "printed at start",
                link_name, ev.relay, ev.fingerprint, ev.known_hosts_file);
        else if (ev.what == relay::relay_event::kind::attached)
            spdlog::info("link {}: attached to the relay as tenant {}", link_name, ev.tenant);
    };
    auto so = relay::relay_supervisor_options(std::move(ro));
    if (!so) return tl::unexpected(so.error());
    return std::move(so->target);
}

}  // namespace

core::result<std::vector<resolved_transport>> resolve_transports(const link_config& link,
                                                                 const ssh::client_flags& base,
                                                                 const ssh::resolve_context& ctx) {
    std::vector<resolved_transport> out;
    for (std::size_t i = 0; i < link.transports.size(); ++i) {
        const auto& t = link.transports[i];
        resolved_transport r{t, std::nullopt, {}};
        const auto where = fmt::format("links.{}.transports[{}]", link.name, i);
        if (t.type == transport_type::relay) {
            auto o = relay_options(link, t);
            if (!o)
                return core::fail(o.error().code, fmt::format("{}: {}", where, o.error().message));
            r.options = std::move(*o);
            out.push_back(std::move(r));
            continue;
        }
        if (link.target.empty()) {
            r.unsupported = "the link has no target";
            out.push_back(std::move(r));
            continue;
        }
        ssh::client_flags flags = base;
        // First obtained wins in ssh_config: the transport's own setting,
        // then `tunnel up -o`, then the file's options, then ssh_config.
        std::vector<std::string> opts;
        if (t.type == transport_type::command) opts.push_back("ProxyCommand=" + t.command);
        if (t.type != transport_type::command) opts.push_back("ProxyJump=none");
        for (auto& o : base.options) opts.push_back(o);
        for (const auto& [k, v] : link.options) opts.push_back(k + "=" + v);
        opts.push_back("BatchMode=yes");
        flags.options = std::move(opts);
        auto config = ssh::load_ssh_config(flags, ctx);
        if (!config)
            return core::fail(config.error().code,
                              fmt::format("{}: {}", where, config.error().message));
        auto o = ssh::resolve_destination(*config, link.target, flags);
        if (!o) return core::fail(o.error().code, fmt::format("{}: {}", where, o.error().message));
        o->batch_mode = true;
        o->ask_secret = nullptr;
        o->ask_interactive = nullptr;
        if (t.type == transport_type::tcp || t.type == transport_type::http_connect) {
            o->jumps.clear();
            o->open_stream = nullptr;
        }
        if (t.type == transport_type::tcp && !t.address.empty()) {
            auto [ah, ap] = split_host_port(t.address);
            o->open_stream = [ah, ap](asio::any_io_executor ex, ssh::time_point deadline) {
                return open_tcp(ex, deadline, ah, ap);
            };
        }
        if (t.type == transport_type::http_connect) {
            auto [ph, pp] = split_host_port(t.proxy);
            transport::proxy_credentials_source creds{expand_home(t.proxy_credentials_file),
                                                      t.proxy_credentials_env};
            o->open_stream = transport::http_connect_opener(ph, pp, o->host, o->port, creds);
        }
        if (t.type == transport_type::jump) {
            // Each hop of `via` (a comma list, outermost first) is resolved on
            // its own: -o ProxyJump would apply to the hops too (a loop). The
            // hops share the link's options except those naming a destination.
            o->jumps.clear();
            o->open_stream = nullptr;
            ssh::client_flags hop_flags = base;
            std::vector<std::string> hop_opts{"ProxyJump=none", "BatchMode=yes"};
            for (auto& b : base.options) hop_opts.push_back(b);
            for (const auto& [k, v] : link.options)
                if (!is_destination_keyword(k)) hop_opts.push_back(k + "=" + v);
            hop_flags.options = std::move(hop_opts);
            auto hop_config = ssh::load_ssh_config(hop_flags, ctx);
            if (!hop_config)
                return core::fail(hop_config.error().code,
                                  fmt::format("{}.via: {}", where, hop_config.error().message));
            std::size_t start = 0;
            while (start <= t.via.size()) {
                auto comma = t.via.find(',', start);
                if (comma == std::string::npos) comma = t.via.size();
                const auto hop_text = t.via.substr(start, comma - start);
                start = comma + 1;
                if (hop_text.empty()) continue;
                auto hop = ssh::resolve_destination(*hop_config, hop_text, hop_flags);
                if (!hop)
                    return core::fail(hop.error().code,
                                      fmt::format("{}.via: {}", where, hop.error().message));
                hop->batch_mode = true;
                hop->jumps.clear();
                hop->open_stream = nullptr;
                o->jumps.push_back(std::move(*hop));
            }
            if (o->jumps.empty())
                return core::fail(core::errc::invalid_argument,
                                  fmt::format("{}.via: names no host", where));
        }
        r.options = std::move(*o);
        out.push_back(std::move(r));
    }
    return out;
}

}  // namespace tunnel::link
