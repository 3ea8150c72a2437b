// An SSH channel on a client session. libssh callbacks only append to the
// buffers and flags in `channel_state`; coroutines read them after
// session::wait() returns. The channel holds its session, so it can never
// outlive it (STYLE 4).
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "ssh/handles.hpp"
#include "ssh/session.hpp"

namespace tunnel::ssh {

struct channel_state {
    std::string out;  // stdout bytes not yet taken by the consumer
    std::string err;  // stderr bytes not yet taken
    bool eof = false;
    bool closed = false;
    std::optional<int> exit_status;
    std::optional<std::string> exit_signal;  // "TERM", "KILL", ...
    bool core_dumped = false;
    std::size_t buffer_cap = 4 << 20;  // stop consuming above this; libssh holds the rest
    // drain() reads libssh's buffer in calls of this size. Above 64 KiB a call
    // also grows libssh's receive window to this size (ARCHITECTURE §4: bulk
    // paths read in >= 4 MiB calls); it does so once `taken` reaches half of it.
    std::size_t read_chunk = 64 * 1024;
    std::size_t taken = 0;  // bytes consumed since drain() last grew the window
    std::string scratch;    // drain()'s buffer for large reads, kept between calls
    // libssh may hold bytes of stdout/stderr that the data callback did not
    // take (our buffer was full, or they came before the callbacks were
    // set): drain() reads a stream from libssh only then. Otherwise its read
    // would only poll(2) the socket (2 per drain, per woken pump).
    bool held[2] = {true, true};
    session* owner = nullptr;      // told about every callback (session::note_activity)
    ssh_channel native = nullptr;  // for the session's window checks
    // A callback ran (or wake() was called) since this channel's waiter was
    // last woken: session::wait_channel returns at once, so no wake-up is lost
    // between a coroutine's check of the state above and its wait.
    bool dirty = false;
};

class channel {
  public:
    static asio::awaitable<core::result<channel>> open_session(std::shared_ptr<session> s,
                                                               time_point deadline);
    static asio::awaitable<core::result<channel>> open_direct_tcpip(std::shared_ptr<session> s,
                                                                    std::string host, uint16_t port,
                                                                    time_point deadline);

    // direct-streamlocal@openssh.com: a Unix socket on the server.
    static asio::awaitable<core::result<channel>> open_direct_streamlocal(
        std::shared_ptr<session> s, std::string path, time_point deadline);
    // A forwarded-tcpip channel the server opened for a reverse forward
    // (ssh_channel_listen_forward), if one was accepted and not taken yet
    // (session::take_forwarded); never waits. `destination_port` is the server port the connection
    // arrived on.
    [[nodiscard]] static std::optional<channel> accept_forwarded(std::shared_ptr<session> s,
                                                                 int& destination_port);
    // Takes a channel libssh already opened on `s` (one the server opened to
    // us and a callback accepted). Bytes, EOF or close that arrived before
    // the callbacks were set are picked up here and by drain().
    [[nodiscard]] static channel adopt(std::shared_ptr<session> s, channel_handle ch);

    channel(channel&&) noexcept = default;
    channel& operator=(channel&&) noexcept = default;
    channel(const channel&) = delete;
    channel& operator=(const channel&) = delete;
    ~channel();

    asio::awaitable<core::result<void>> request_pty(std::string term, int cols, int rows,
                                                    time_point deadline);
    asio::awaitable<core::result<void>> request_exec(std::string command, time_point deadline);
    asio::awaitable<core::result<void>> request_subsystem(std::string name, time_point deadline);
    asio::awaitable<core::result<void>> request_shell(time_point deadline);
    // auth-agent-req@openssh.com (no reply is asked for, as in OpenSSH); see
    // ssh/agent_forward.hpp, which decides when to send it.
    asio::awaitable<core::result<void>> request_auth_agent(time_point deadline);
    // window-change: the terminal was resized (no reply is asked for).
    [[nodiscard]] core::result<void> change_pty_size(int cols, int rows);

    // Queues up to what the remote window allows; returns the bytes accepted.
    [[nodiscard]] core::result<std::size_t> write_some(std::string_view data);
    [[nodiscard]] std::size_t window() const noexcept;
    void send_eof();
    void send_signal(const char* name);
    void close();

    // Moves bytes libssh kept back (because buffers were full) into the state.
    void drain();

    // Waits for this channel only (session::wait_channel): data, EOF, close
    // or exit status arrived, or wake() was called; wait_writable also
    // returns once the window is open. Callers re-check the state after
    // every return. One coroutine each.
    asio::awaitable<core::result<void>> wait_readable(time_point deadline) {
        return session_->wait_channel(*state_, false, deadline);
    }
    asio::awaitable<core::result<void>> wait_writable(time_point deadline) {
        return session_->wait_channel(*state_, true, deadline);
    }
    void wake() { session_->wake(*state_); }

    [[nodiscard]] channel_state& state() noexcept { return *state_; }
    [[nodiscard]] session& owner() noexcept { return *session_; }
    [[nodiscard]] bool finished() const noexcept {
        return state_->closed || (state_->eof && state_->exit_status.has_value());
    }

  private:
    channel(std::shared_ptr<session> s, channel_handle ch);
    // False once session::disconnect() freed libssh's session: libssh freed
    // this channel with it, so nothing may touch channel_ any more.
    [[nodiscard]] bool usable() const noexcept { return channel_ && session_->native(); }
    void drain_reads();
    asio::awaitable<core::result<void>> request(const char* what, auto step, time_point deadline);

    std::shared_ptr<session> session_;
    std::unique_ptr<channel_state> state_;
    std::unique_ptr<ssh_channel_callbacks_struct> callbacks_;  // stable address for libssh
    channel_handle channel_;
};

}  // namespace tunnel::ssh
