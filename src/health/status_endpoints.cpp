#include "health/status_endpoints.hpp"

#include <charconv>

#include <fmt/format.h>

namespace tunnel::health {

using observe::admin_request;
using observe::admin_response;

std::vector<observe::admin_endpoint> status_endpoints(std::shared_ptr<const latest_round> latest) {
    std::vector<observe::admin_endpoint> t;
    t.push_back({"/healthz", "200 while the watcher serves",
                 [](const admin_request&) { return admin_response::text("ok\n"); }, false, true});
    t.push_back(
        {"/metrics", "Prometheus text: load, memory, disks, failed units, clock skew per host",
         [latest](const admin_request&) { return admin_response::metrics(latest->metrics); }});
    t.push_back({"/status", "JSON: the latest round, as tunnel health --json prints it",
                 [latest](const admin_request&) {
                     if (latest->rounds == 0)
                         return admin_response::error(503, "no_round_yet",
                                                      "the first round has not finished yet");
                     return admin_response::json(latest->json + "\n");
                 }});
    return t;
}

core::result<std::shared_ptr<observe::admin_http_server>> open_status_server(
    asio::any_io_executor executor, const std::string& address,
    std::shared_ptr<const latest_round> latest) {
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
    if (!ip.is_loopback())
        return bad(
            "not a loopback address (the metrics name every host and have no token); "
            "listen on 127.0.0.1 and let a local agent scrape it");

    observe::admin_server_options o;
    o.title = "tunnel health status endpoints";
    o.log_name = "health status";
    o.read_timeout = std::chrono::seconds(5);
    auto server = observe::admin_http_server::open(
        executor, asio::ip::tcp::endpoint(ip, static_cast<std::uint16_t>(port)),
        status_endpoints(std::move(latest)), std::move(o));
    if (!server)
        return core::fail(server.error().code,
                          fmt::format("--status-addr: {}", server.error().message));
    return server;
}

}  // namespace tunnel::health
