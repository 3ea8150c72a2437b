// The manager's control socket: a Unix stream socket, mode 0600, in a 0700
// directory ($XDG_RUNTIME_DIR/tunnel/control.sock by default), speaking JSON
// lines (link/control_request.hpp). Limits: 32 connections, 16 KiB per
// request line, 5 minutes idle, 4096 queued events per `events` reader (one
// that falls further behind is told so and disconnected). Only the socket's
// own user may connect (SO_PEERCRED is checked on accept).
#pragma once

#include <memory>
#include <set>
#include <string>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "link/exec_plan.hpp"
#include "link/manager.hpp"

namespace tunnel::link {

// $XDG_RUNTIME_DIR/tunnel/control.sock; fails when XDG_RUNTIME_DIR is unset.
[[nodiscard]] core::result<std::string> default_control_path();

struct control_limits {
    std::size_t max_connections = 32;
    std::size_t max_queued_events = 4096;
    std::chrono::milliseconds idle_timeout{300'000};
};

class control_server : public std::enable_shared_from_this<control_server> {
  public:
    // Binds `path` (creating its directory 0700 if missing). A stale socket
    // left by a dead manager is replaced; a live one is an error, and so is
    // a path that exists and is not a socket.
    [[nodiscard]] static core::result<std::shared_ptr<control_server>> open(
        asio::any_io_executor executor, std::string path, std::shared_ptr<manager> m,
        control_limits limits = {});

    // The checks open() makes before binding, without binding: call it
    // before anything else binds (listeners), so a second manager on the
    // same socket is told so first.
    [[nodiscard]] static core::result<void> check_available(const std::string& path);

    // How exec requests that carry a command line ("args") are planned;
    // without one they are refused and the caller runs the CLI itself.
    void plan_command_lines_with(exec_planner planner) { planner_ = std::move(planner); }

    void start();
    // Stops accepting and removes the socket file (new callers fall back to
    // their own connections at once), then waits up to `bound` for the pooled
    // execs in flight (link/exec_service.hpp) to end. `tunnel up` does this on
    // SIGTERM/SIGINT before it stops the links.
    asio::awaitable<void> drain(std::chrono::milliseconds bound);
    [[nodiscard]] std::size_t execs_in_flight() const noexcept { return execs_in_flight_; }
    // Stops accepting, closes every connection, removes the socket file.
    void stop();
    [[nodiscard]] const std::string& path() const noexcept { return path_; }

    control_server(asio::any_io_executor executor, std::string path, std::shared_ptr<manager> m,
                   asio::local::stream_protocol::acceptor acceptor, control_limits limits);
    ~control_server();

  private:
    struct connection;
    asio::awaitable<void> accept_loop();
    asio::awaitable<void> serve(std::shared_ptr<connection> c);
    asio::awaitable<void> stream_events(std::shared_ptr<connection> c);
    // Fills req's link, destination and command from its command line; false
    // (and why) when the planner refuses it.
    bool plan_command_line(control_request& req, std::string& refusal) const;

    asio::any_io_executor executor_;
    std::string path_;
    std::shared_ptr<manager> manager_;
    asio::local::stream_protocol::acceptor acceptor_;
    control_limits limits_;
    std::set<std::shared_ptr<connection>> connections_;
    bool stopped_ = false;
    bool accepting_ = true;
    std::size_t execs_in_flight_ = 0;
    exec_planner planner_;
};

}  // namespace tunnel::link
