#include "health/status_endpoints.hpp"

#include "observe/status_listener.hpp"

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
    asio::any_io_executor executor, const std::string& address, const std::string& token_file,
    std::shared_ptr<const latest_round> latest) {
    observe::status_listener_options o;
    o.address = address;
    o.token_file = token_file;
    o.title = "tunnel health status endpoints";
    return observe::open_status_listener(std::move(executor), o,
                                         status_endpoints(std::move(latest)), nullptr);
}

}  // namespace tunnel::health
