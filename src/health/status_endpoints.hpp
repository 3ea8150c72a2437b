// `tunnel health --watch --status-addr HOST:PORT`: the latest round served
// by the one admin HTTP server (observe::admin_http_server):
//   /metrics  Prometheus text (health_report.hpp prometheus_text)
//   /status   the round as JSON, the document --json prints
//   /healthz  200 while serving (liveness of the watcher, not of the hosts)
// Off loopback a bearer token is required (--status-token-file), as for
// every --status-addr (observe/status_listener.hpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "observe/admin_http_server.hpp"

namespace tunnel::health {

// What the endpoints serve; the watcher replaces it after each round (same thread).
struct latest_round {
    std::uint64_t rounds = 0;
    std::string metrics;  // Prometheus text
    std::string json;     // the --json document
};

[[nodiscard]] std::vector<observe::admin_endpoint> status_endpoints(
    std::shared_ptr<const latest_round> latest);

// Checks the address (HOST:PORT, an IP; a token file off loopback) and binds now.
[[nodiscard]] core::result<std::shared_ptr<observe::admin_http_server>> open_status_server(
    asio::any_io_executor executor, const std::string& address, const std::string& token_file,
    std::shared_ptr<const latest_round> latest);

}  // namespace tunnel::health
