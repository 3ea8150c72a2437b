// A raw HTTP client for Server-Sent Events streams in tests: sends one
// request on 127.0.0.1:port and keeps reading what arrives, so a test can
// wait for an event, stop reading (a slow subscriber) or see the server
// close the stream.
//
//   auto c = event_stream_client::open(port, "GET /dashboard/events HTTP/1.1\r\nHost: x\r\n\r\n");
//   auto snap = c->wait_for_event("snapshot", [](const nlohmann::json& j) { ... }, 2s);
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace tunnel::test {

class event_stream_client {
  public:
    // `receive_buffer`: SO_RCVBUF before connecting (0: the kernel's default).
    [[nodiscard]] static core::result<event_stream_client> open(std::uint16_t port,
                                                                const std::string& request,
                                                                int receive_buffer = 0);
    event_stream_client(event_stream_client&& other) noexcept;
    event_stream_client& operator=(event_stream_client&&) = delete;
    ~event_stream_client();

    // Reads until the response head is in; its status (0 on timeout/close).
    [[nodiscard]] int status(std::chrono::milliseconds timeout);
    [[nodiscard]] const std::string& head() const noexcept { return head_; }
    // Reads until an event named `name` whose data (JSON) satisfies `match`
    // arrives; the events before it are consumed. nullopt on timeout or close.
    [[nodiscard]] std::optional<nlohmann::json> wait_for_event(
        const std::string& name, const std::function<bool(const nlohmann::json&)>& match,
        std::chrono::milliseconds timeout);
    // True when the server closes the connection within `timeout` (reading
    // and discarding whatever it still sends).
    [[nodiscard]] bool closed_by_server(std::chrono::milliseconds timeout);
    // Bytes of body read so far.
    [[nodiscard]] std::size_t body_bytes() const noexcept { return body_total_; }
    // Reads (and discards) until `total` bytes of body arrived in all.
    [[nodiscard]] bool wait_for_bytes(std::size_t total, std::chrono::milliseconds timeout);

  private:
    explicit event_stream_client(int fd) : fd_(fd) {}
    // One read of up to 64 KiB within `timeout`; false on timeout, close or error.
    bool read_some(std::chrono::milliseconds timeout);
    int fd_ = -1;
    bool closed_ = false;
    std::string head_;
    std::string buffer_;  // unparsed body
    std::size_t body_total_ = 0;
};

}  // namespace tunnel::test
