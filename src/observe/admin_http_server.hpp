// The one admin HTTP server (STYLE 13), used by `tunnel relay` (admin_listen)
// and `tunnel forward --status-addr`: an admin_router over an endpoint table,
// served one request per connection with everything bounded.
//
//   auto server = observe::admin_http_server::open(io.get_executor(), endpoint, table, options);
//   (*server)->start();
//   ...
//   (*server)->close();   // the acceptor and every admin connection: io.run() can return
//
// Limits: request head (max_header_bytes, 431), body (max_body_bytes, 413),
// one deadline for reading the request and writing the answer
// (read_timeout), open connections (max_connections: beyond it a new
// connection is closed at once and counted). Accept errors (EMFILE, ENFILE,
// ENOBUFS...) back off from 10 ms doubling to accept_backoff_max instead of
// spinning, with one warning per episode.
//
// Everything runs on the acceptor's executor, which must not run handlers
// concurrently (an io_context run by one thread, or a strand). close() may be
// called from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "observe/admin_http.hpp"

namespace tunnel::observe {

class metrics_registry;

struct admin_server_options {
    std::string title = "Admin endpoints";  // heads the index
    std::string log_name = "admin";         // in log lines: "<log_name> listener: ..."
    admin_access access;
    std::size_t max_connections = 32;
    std::size_t max_header_bytes = 8 * 1024;
    std::size_t max_body_bytes = 64 * 1024;
    std::chrono::milliseconds read_timeout{std::chrono::seconds(10)};
    std::chrono::milliseconds accept_backoff_max{std::chrono::seconds(1)};
    // Event streams (admin_response::events): a comment this often when
    // nothing else was sent, so a vanished reader is noticed; each write of
    // a stream must finish within read_timeout or the reader is cut off.
    std::chrono::milliseconds event_keepalive{std::chrono::seconds(15)};
    // admin_http_* counters (requests by status, refused connections, accept
    // errors) when set; must outlive the server.
    metrics_registry* registry = nullptr;
    // Called after a mutating endpoint answered (e.g. to audit it).
    std::function<void(const admin_request&, const admin_response&)> on_mutation;
};

class admin_http_server : public std::enable_shared_from_this<admin_http_server> {
    struct private_tag {};

  public:
    // Binds `endpoint` now; the message names the address on failure.
    [[nodiscard]] static core::result<std::shared_ptr<admin_http_server>> open(
        asio::any_io_executor executor, const asio::ip::tcp::endpoint& endpoint,
        std::vector<admin_endpoint> table, admin_server_options options);
    // Serves on an acceptor that is already listening.
    [[nodiscard]] static std::shared_ptr<admin_http_server> create(
        asio::ip::tcp::acceptor acceptor, std::vector<admin_endpoint> table,
        admin_server_options options);

    admin_http_server(private_tag, asio::ip::tcp::acceptor acceptor,
                      std::vector<admin_endpoint> table, admin_server_options options);
    admin_http_server(const admin_http_server&) = delete;
    admin_http_server& operator=(const admin_http_server&) = delete;
    ~admin_http_server();

    void start();
    // Closes the acceptor, cancels a pending back-off and closes every open
    // admin connection; their coroutines end, so nothing of the server is
    // left on the executor. Idempotent.
    void close();

    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
    [[nodiscard]] std::size_t open_connections() const noexcept { return connections_.size(); }
    [[nodiscard]] const admin_router& router() const noexcept { return router_; }

  private:
    struct connection;
    struct counters;
    asio::awaitable<void> accept_loop();
    asio::awaitable<void> serve(std::shared_ptr<connection> conn);
    asio::awaitable<void> stream(std::shared_ptr<connection> conn, admin_response response);
    void close_now();

    asio::ip::tcp::acceptor acceptor_;
    asio::steady_timer backoff_;
    admin_router router_;
    admin_server_options options_;
    std::unique_ptr<counters> counters_;
    std::set<std::shared_ptr<connection>> connections_;
    std::uint16_t port_ = 0;
    bool closed_ = false;
};

}  // namespace tunnel::observe
