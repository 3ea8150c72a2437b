#include "observe/status_listener.hpp"

#include <charconv>
#include <cstdint>
#include <string_view>

#include <fmt/format.h>

#include "core/secret_file.hpp"

namespace tunnel::observe {

core::result<std::shared_ptr<admin_http_server>> open_status_listener(
    asio::any_io_executor executor, const status_listener_options& options,
    std::vector<admin_endpoint> table, metrics_registry* registry) {
    const std::string& address = options.address;
    auto bad = [&](std::string why) {
        return core::fail(core::errc::invalid_argument,
                          fmt::format("{} \"{}\": {}; expected HOST:PORT, e.g. 127.0.0.1:9100",
                                      options.address_flag, address, why));
    };
    auto colon = address.rfind(':');
    if (colon == std::string::npos || colon == 0) return bad("missing port");
    std::string host(address.substr(0, colon));
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    auto port_text = std::string_view(address).substr(colon + 1);
    unsigned port = 0;
    auto [end, ec1] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (port_text.empty() || ec1 != std::errc{} || end != port_text.data() + port_text.size() ||
        port > 65535)
        return bad("bad port");
    boost::system::error_code ec;
    auto ip = asio::ip::make_address(host, ec);
    if (ec) return bad("the host must be an IP address");

    admin_server_options o;
    o.title = options.title;
    o.log_name = "status";
    o.registry = registry;
    o.read_timeout = std::chrono::seconds(5);
    o.access.token_hint = fmt::format("the token in {}", options.token_flag);
    if (!options.token_file.empty()) {
        auto token = core::read_secret_file(options.token_file, options.token_flag, 16);
        if (!token) return tl::unexpected(token.error());
        o.access.bearer_token = std::move(*token);
    } else if (!ip.is_loopback()) {
        return core::fail(
            core::errc::invalid_argument,
            fmt::format("{} {}: not a loopback address, so the status endpoints need a bearer "
                        "token: give {} FILE (e.g. `openssl rand -hex 32 > FILE`), or listen on "
                        "127.0.0.1",
                        options.address_flag, address, options.token_flag));
    }
    auto server = admin_http_server::open(
        executor, asio::ip::tcp::endpoint(ip, static_cast<std::uint16_t>(port)), std::move(table),
        std::move(o));
    if (!server)
        return core::fail(server.error().code,
                          fmt::format("{}: {}", options.address_flag, server.error().message));
    return server;
}

}  // namespace tunnel::observe
