#include "forward/status_server.hpp"

#include "observe/status_listener.hpp"

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
    observe::status_listener_options o;
    o.address = options.address;
    o.token_file = options.token_file;
    o.title = "tunnel forward status endpoints";
    auto* registry = &status->registry;
    return observe::open_status_listener(std::move(executor), o,
                                         forward_status_endpoints(std::move(status)), registry);
}

}  // namespace tunnel::forward
