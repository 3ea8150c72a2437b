// An HTTP/1.1 origin for relay tests, on 127.0.0.1 and a port chosen at
// runtime, one thread per connection, keep-alive:
//
//   GET  /hello            200 "hello\n" (Content-Length)
//   GET  /headers          200, the request head as received, as the body
//   GET  /stream?n=N&ms=M  200 application/x-ndjson, chunked, one line every
//                          M ms ({"i":k}); stops when the caller is gone
//   GET  /slow?ms=M        200 "slow\n" after M ms
//   POST /echo             200, the request body back (Content-Length or chunked)
//   GET  /sw.js            200 text/javascript with Service-Worker-Allowed: /
//   GET  /drop             closes the connection without answering
//   GET  /bye              200 "bye\n" (Content-Length, no Connection: close), then
//                          closes the connection
//   GET  /hop              200 "hop\n" with hop-by-hop fields (Connection: X-Hop-Resp,
//                          X-Hop-Resp, Keep-Alive, Proxy-Authenticate, Upgrade) and X-Kept
//   GET  /upgrade          101 Switching Protocols (whatever the request), then echoes raw
//                          bytes
//   GET  /big?size=N       200, N bytes (Content-Length), written 64 KiB at a time
//   anything else          404
//
// Counters let tests see what the relay did to the origin: connections
// accepted and closed, and streams that ended because the peer went away.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "core/error.hpp"

namespace tunnel::test {

class streaming_origin {
  public:
    [[nodiscard]] static core::result<std::unique_ptr<streaming_origin>> start();
    ~streaming_origin();
    streaming_origin(const streaming_origin&) = delete;
    streaming_origin& operator=(const streaming_origin&) = delete;

    [[nodiscard]] std::uint16_t port() const noexcept;
    [[nodiscard]] int connections() const noexcept;       // accepted so far
    [[nodiscard]] int open_connections() const noexcept;  // accepted and not yet closed
    [[nodiscard]] int requests() const noexcept;
    [[nodiscard]] int streams_aborted() const noexcept;  // /stream writes failed: the peer left
    [[nodiscard]] int streams_completed() const noexcept;
    [[nodiscard]] int bigs_aborted() const noexcept;  // /big writes failed: the peer left
    [[nodiscard]] int bigs_completed() const noexcept;

    // Polls until pred() or timeout; returns pred().
    template <class Pred>
    [[nodiscard]] static bool wait_until(Pred pred, std::chrono::milliseconds timeout);

    struct state;

  private:
    streaming_origin() = default;
    std::shared_ptr<state> state_;
};

bool wait_until_impl(const std::function<bool()>& pred, std::chrono::milliseconds timeout);

template <class Pred>
bool streaming_origin::wait_until(Pred pred, std::chrono::milliseconds timeout) {
    return wait_until_impl(std::function<bool()>(pred), timeout);
}

}  // namespace tunnel::test
