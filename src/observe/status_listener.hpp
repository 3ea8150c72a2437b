// A command's --status-addr: its admin endpoint table served by the one
// admin HTTP server (admin_http_server.hpp) on HOST:PORT. Used by
// `tunnel forward` and `tunnel up`. Off loopback a bearer token (read from
// a token file) is required; the Host check (IP literals and localhost)
// always applies.
//
//   auto server = observe::open_status_listener(io.get_executor(),
//       {.address = "127.0.0.1:9100", .title = "tunnel up status endpoints"}, table, &registry);
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "observe/admin_http_server.hpp"

namespace tunnel::observe {

struct status_listener_options {
    std::string address;     // HOST:PORT ("127.0.0.1:9100", "[::1]:0"); HOST an IP literal
    std::string token_file;  // required when HOST is not loopback
    std::string address_flag = "--status-addr";      // names the setting in messages
    std::string token_flag = "--status-token-file";  // likewise
    std::string title = "status endpoints";          // heads the index page
};

// Checks the address, reads the token and binds now; the message names the
// setting and says how to fix it. `registry` (may be null) gets the
// server's own admin_http_* counters and must outlive it.
[[nodiscard]] core::result<std::shared_ptr<admin_http_server>> open_status_listener(
    asio::any_io_executor executor, const status_listener_options& options,
    std::vector<admin_endpoint> table, metrics_registry* registry);

}  // namespace tunnel::observe
