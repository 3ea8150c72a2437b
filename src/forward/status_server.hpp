// --status-addr: the forward's admin endpoints (/healthz, /metrics,
// /status) served by the one admin HTTP server, observe::admin_http_server.
// Off loopback a bearer token (--status-token-file) is required; the Host
// check (IP literals and localhost) always applies.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "forward/forward_metrics.hpp"
#include "forward/forward_stats.hpp"
#include "observe/admin_http_server.hpp"

namespace tunnel::forward {

// What the endpoints read: a stats snapshot and the registry it is mirrored into.
struct forward_status {
    explicit forward_status(std::function<supervisor_stats()> snapshot_fn)
        : snapshot(std::move(snapshot_fn)) {}
    std::function<supervisor_stats()> snapshot;
    observe::metrics_registry registry;
    forward_metrics metrics{registry};
};

// The /healthz, /metrics and /status table.
[[nodiscard]] std::vector<observe::admin_endpoint> forward_status_endpoints(
    std::shared_ptr<forward_status> status);

struct status_server_options {
    std::string address;     // --status-addr HOST:PORT ("127.0.0.1:9100", "[::1]:0")
    std::string token_file;  // --status-token-file; required when HOST is not loopback
};

// Checks the flags, reads the token and binds now; fails naming the flag.
[[nodiscard]] core::result<std::shared_ptr<observe::admin_http_server>> open_status_server(
    asio::any_io_executor executor, const status_server_options& options,
    std::shared_ptr<forward_status> status);

}  // namespace tunnel::forward
