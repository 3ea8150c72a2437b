// A non-blocking JSON-lines connection to the manager's control socket, for
// a poll() loop that must never wait on the manager (`tunnel ui`): requests
// are queued and written when the socket takes them, replies and events are
// read as they come. Limits: 16 MiB per line, 64 KiB of queued requests.
#pragma once

#include <poll.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/unique_fd.hpp"

namespace tunnel::ui {

class control_stream {
  public:
    // Connects to the Unix socket `path` (a local connect does not wait).
    [[nodiscard]] static core::result<control_stream> open(const std::string& path);

    // Queues one request line; fails when the queue is full or the stream is closed.
    [[nodiscard]] core::result<void> send(const nlohmann::json& request);

    // The pollfd to wait on (POLLIN, and POLLOUT while requests are queued).
    [[nodiscard]] pollfd poll_entry() const;
    // After poll(): writes what it can, reads what is there and appends the
    // complete lines to `lines`. An error or the manager closing the
    // connection closes the stream (the lines before it are still given).
    [[nodiscard]] core::result<void> on_ready(short revents, std::vector<std::string>& lines);

    [[nodiscard]] bool is_open() const noexcept { return fd_.get() >= 0; }
    void close() noexcept { fd_.reset(); }

  private:
    explicit control_stream(core::unique_fd fd) : fd_(std::move(fd)) {}
    core::result<void> flush();
    core::unique_fd fd_;
    std::string out_;
    std::string in_;
};

}  // namespace tunnel::ui
