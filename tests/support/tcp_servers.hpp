// Small blocking TCP servers for forwarding tests, each on its own threads:
// an echo server that can be paused (a stalled target) and an HTTP origin
// that answers every request with a fixed body.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "core/error.hpp"

namespace tunnel::test {

class tcp_server_base;

// Echoes every byte back; half-closes after the client's EOF. While paused
// its connections read nothing (so senders block on flow control).
class echo_server {
  public:
    // host: "127.0.0.1" or "::1"; port 0 chooses one.
    [[nodiscard]] static core::result<std::unique_ptr<echo_server>> start(
        const std::string& host = "127.0.0.1");
    ~echo_server();
    [[nodiscard]] uint16_t port() const noexcept;
    void set_paused(bool paused) noexcept;
    [[nodiscard]] int accepted() const noexcept;

  private:
    echo_server() = default;
    std::shared_ptr<tcp_server_base> base_;
};

// HTTP/1.1: reads a request head, answers 200 with `body`, closes.
class http_origin {
  public:
    [[nodiscard]] static core::result<std::unique_ptr<http_origin>> start(
        std::string body, const std::string& host = "127.0.0.1");
    ~http_origin();
    [[nodiscard]] uint16_t port() const noexcept;
    [[nodiscard]] int requests() const noexcept;

  private:
    http_origin() = default;
    std::shared_ptr<tcp_server_base> base_;
};

// Client helpers (blocking, with deadlines).
// Connects to host:port; -1 on failure.
[[nodiscard]] int connect_tcp(const std::string& host, uint16_t port, int timeout_ms = 5000);
// Sends `data` on one thread while reading everything back until EOF on
// this one; returns what came back (or nullopt on a socket error or
// timeout). Shuts down the write side after sending.
[[nodiscard]] core::result<std::string> exchange(int fd, const std::string& data, int timeout_ms);
// SHA-256 of data as hex.
[[nodiscard]] std::string sha256_hex(const std::string& data);
// Pseudo-random bytes from a seed (reproducible).
[[nodiscard]] std::string random_bytes(std::size_t n, uint64_t seed);

}  // namespace tunnel::test
