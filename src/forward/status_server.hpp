// --status-addr: a tiny HTTP/1.1 admin listener (STYLE 13: endpoints are a
// table, /help is generated from it). GET only, one request per
// connection, bounded request size and read deadline.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "forward/forward_stats.hpp"

namespace tunnel::forward {

struct http_response {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
};

struct status_endpoint {
    std::string path;
    std::string help;
    std::function<http_response()> handler;
};

// The /healthz, /metrics and /status table over a stats snapshot function.
[[nodiscard]] std::vector<status_endpoint> forward_status_endpoints(
    std::function<supervisor_stats()> snapshot);

// Answers one raw request ("GET /path HTTP/1.1\r\n...") from the table:
// 404 for unknown paths, 405 for other methods, 400 for garbage.
[[nodiscard]] http_response route_request(const std::vector<status_endpoint>& table,
                                          std::string_view request);

[[nodiscard]] std::string serialize(const http_response& r);

class status_server : public std::enable_shared_from_this<status_server> {
  public:
    // Binds host:port now ("127.0.0.1:9100", "[::1]:0"); fails naming the address.
    [[nodiscard]] static core::result<std::shared_ptr<status_server>> open(
        asio::any_io_executor executor, std::string_view address,
        std::vector<status_endpoint> table);
    void start();
    void stop();
    [[nodiscard]] uint16_t port() const;

    status_server(asio::ip::tcp::acceptor acceptor, std::vector<status_endpoint> table);

  private:
    asio::awaitable<void> accept_loop();
    asio::awaitable<void> serve(asio::ip::tcp::socket socket);

    asio::ip::tcp::acceptor acceptor_;
    std::vector<status_endpoint> table_;
    int active_ = 0;
};

}  // namespace tunnel::forward
