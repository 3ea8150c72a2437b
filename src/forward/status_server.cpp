#include "forward/status_server.hpp"

#include <charconv>

#include <fmt/format.h>

#include "core/secret_file.hpp"

namespace tunnel::forward {

using observe::admin_request;
using observe::admin_response;

std::vector<observe::admin_endpoint> forward_status_endpoints(
    std::shared_ptr<forward_status> status) {
    std::vector<observe::admin_endpoint> t;
    t.push_back({"/healthz", "200 when the session and every forward are up, else 503",
                 [status](const admin_request&) {
                     const bool ok = status->snapshot().healthy();
                     return admin_response::text(ok ? "ok\n" : "unhealthy\n", ok ? 200 : 503);
                 },
                 false, true});
    t.push_back({"/metrics",
                 "Prometheus text: bytes, channels, connects, reconnects, state per forward",
                 [status](const admin_request&) {
                     status->metrics.update(status->snapshot());
                     return admin_response::metrics(status->registry.expose());
                 }});
    t.push_back({"/status", "JSON: session and per-forward state and counters",
                 [status](const admin_request&) {
                     return admin_response::json(render_status_json(status->snapshot()) + "\n");
                 }});
    return t;
}

core::result<std::shared_ptr<observe::admin_http_server>> open_status_server(
    asio::any_io_executor executor, const status_server_options& options,
    std::shared_ptr<forward_status> status) {
    const std::string& address = options.address;
    auto bad = [&](std::string why) {
        return core::fail(
            core::errc::invalid_argument,
            fmt::format("--status-addr \"{}\": {}; expected HOST:PORT, e.g. 127.0.0.1:9100",
                        address, why));
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

    observe::admin_server_options o;
    o.title = "tunnel forward status endpoints";
    o.log_name = "status";
    o.registry = &status->registry;
    o.read_timeout = std::chrono::seconds(5);
    o.access.token_hint = "the token in --status-token-file";
    if (!options.token_file.empty()) {
        auto token = core::read_secret_file(options.token_file, "--status-token-file", 16);
        if (!token) return tl::unexpected(token.error());
        o.access.bearer_token = std::move(*token);
    } else if (!ip.is_loopback()) {
        return core::fail(
            core::errc::invalid_argument,
            fmt::format("--status-addr {}: not a loopback address, so the status endpoints need a "
                        "bearer token: give --status-token-file FILE (e.g. `openssl rand -hex 32 "
                        "> FILE`), or listen on 127.0.0.1",
                        address));
    }
    auto server = observe::admin_http_server::open(
        executor, asio::ip::tcp::endpoint(ip, static_cast<std::uint16_t>(port)),
        forward_status_endpoints(status), std::move(o));
    if (!server)
        return core::fail(server.error().code,
                          fmt::format("--status-addr: {}", server.error().message));
    return server;
}

}  // namespace tunnel::forward
