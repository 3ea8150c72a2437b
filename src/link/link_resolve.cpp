#include "link/link_resolve.hpp"

#include <fmt/format.h>

#include "link/http_connect.hpp"
#include "ssh/tcp_connect.hpp"

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
            r.unsupported = "the relay transport is not implemented yet";
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
        if (t.type == transport_type::jump) opts.push_back("ProxyJump=" + t.via);
        if (t.type == transport_type::command) opts.push_back("ProxyCommand=" + t.command);
        if (t.type == transport_type::tcp || t.type == transport_type::http_connect)
            opts.push_back("ProxyJump=none");
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
            o->open_stream = http_connect_opener(ph, pp, o->host, o->port);
        }
        r.options = std::move(*o);
        out.push_back(std::move(r));
    }
    return out;
}

}  // namespace tunnel::link
