// What an SSH session runs over when it is not a direct TCP connection: one
// end of a socketpair for libssh, and a pump that moves bytes between the
// other end and the real transport (a ProxyJump channel, a WebSocket, ...).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "core/asio.hpp"
#include "core/error.hpp"

namespace tunnel::ssh {

// Keeps the transport behind a socketpair moving; stop() cuts it (the
// session's end then reads EOF). Owned by the session that uses it.
class stream_pump {
  public:
    virtual ~stream_pump() = default;
    virtual void stop() = 0;
    // Why the transport ended, if it knows (e.g. "ProxyCommand exited with
    // status 1"); empty otherwise. Added to handshake errors.
    [[nodiscard]] virtual std::string why_closed() { return {}; }
};

struct byte_stream {
    int fd = -1;                        // for libssh, which owns and closes it
    std::shared_ptr<stream_pump> pump;  // may be null for a plain socket
};

// Opens a byte stream to the server before `deadline` (connect_options::open_stream).
using stream_opener = std::function<asio::awaitable<core::result<byte_stream>>(
    asio::any_io_executor executor, std::chrono::steady_clock::time_point deadline)>;

// A non-blocking, close-on-exec AF_UNIX socketpair: {pump's end, session's end}.
[[nodiscard]] core::result<std::pair<int, int>> open_socketpair();

}  // namespace tunnel::ssh
