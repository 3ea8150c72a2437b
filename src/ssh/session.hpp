// A connected, authenticated client SSH session running non-blocking on one
// executor (ARCHITECTURE §4): the socket fd is registered with asio, libssh is
// polled with a zero timeout when it is ready, and libssh callbacks only record
// state that the waiting coroutines then read.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "ssh/connect_options.hpp"
#include "ssh/handles.hpp"
#include "ssh/keepalive.hpp"
#include "ssh/known_hosts.hpp"

namespace tunnel::ssh {

using clock_type = std::chrono::steady_clock;
using time_point = clock_type::time_point;

class stream_pump;
class agent_forwarder;
struct channel_state;

class session : public std::enable_shared_from_this<session> {
  public:
    // Connects (TCP or through ProxyJump hops), verifies the host key under the
    // configured policy and authenticates, all within opts.connect_timeout.
    static asio::awaitable<core::result<std::shared_ptr<session>>> connect(
        asio::any_io_executor executor, connect_options opts);

    session(const session&) = delete;
    session& operator=(const session&) = delete;
    ~session();

    // Waits until the socket is ready (or `deadline`, or another waiter made
    // progress), then lets libssh process what arrived. Callers re-check their
    // own state after every return. Fails with timeout at the deadline and with
    // disconnected when the session is gone or keepalives went unanswered.
    asio::awaitable<core::result<void>> wait(time_point deadline);

    // The same for one channel's coroutine: woken only when that channel's
    // callbacks ran (data, EOF, close, exit status) or wake() was called,
    // and with `for_write` also when its window is open; not by every packet
    // of the session. With many channels in flight (a tunnel's pooled
    // keep-alive channels), wait() woke every waiter on every packet: each
    // resumed, polled and re-armed the socket (channel.hpp wraps this).
    asio::awaitable<core::result<void>> wait_channel(channel_state& st, bool for_write,
                                                     time_point deadline);

    // Runs `step` (a non-blocking libssh call) until it stops answering
    // `again`, waiting for the socket in between.
    template <class Step>
    asio::awaitable<core::result<int>> drive(Step step, int again, time_point deadline) {
        for (;;) {
            // The step runs libssh's packet loop: wake waiters whose channel
            // events it delivered (see note_activity).
            // (Every packet counts: a channel-open confirmation or failure
            // for another waiter's channel has no callback.)
            const auto before = activity();
            int rc = step();
            if (activity() != before) notify();
            if (rc != again) co_return rc;
            if (auto w = co_await wait(deadline); !w) co_return tl::unexpected(w.error());
        }
    }

    // Something may have changed outside the packet loop (a libssh call ran
    // it, or a caller queued output): wakes every wait() and the channel
    // waiters whose channel changed, and watches the socket for writing when
    // libssh holds output.
    void notify();
    // Wakes `st`'s channel waiters whatever changed (a pump that stops).
    void wake(channel_state& st);
    // After a write libssh could not flush at once: watches the socket for
    // writing (no waiter needs to be woken for it).
    void watch_output() { arm(); }

    // Counts channel events (data, EOF, close, exit status) delivered by
    // libssh callbacks, plus every packet libssh received. libssh also runs its
    // packet loop inside channel calls (reads, writes, accepts), outside
    // wait(): a channel call that sees this change notify()s, so a waiter whose
    // data was delivered that way wakes up. Packets without a callback count
    // too (a channel-open confirmation has none).
    void note_activity() noexcept { ++activity_; }
    [[nodiscard]] std::uint64_t activity() const noexcept {
        return activity_ + received_.in_packets;
    }

    // Waits until libssh has written everything it queued.
    asio::awaitable<core::result<void>> flush(time_point deadline);

    // Cheap liveness check used before a pooled session is reused.
    [[nodiscard]] bool alive();

    [[nodiscard]] ssh_session native() const noexcept { return session_.get(); }
    [[nodiscard]] const connect_options& options() const noexcept { return opts_; }
    [[nodiscard]] const std::string& host_key_fingerprint() const noexcept { return fingerprint_; }
    [[nodiscard]] asio::any_io_executor executor() { return fd_.get_executor(); }
    [[nodiscard]] std::string last_error() const;
    // Agent forwarding on this session (ssh/agent_forward.hpp).
    [[nodiscard]] agent_forwarder& agent() noexcept { return *agent_; }

    // A forwarded-tcpip channel the server opened for one of our remote
    // forwards (-R), accepted as its open arrived, with the port it is for.
    struct forwarded_open {
        channel_handle channel;
        int port = 0;
    };
    // The oldest forwarded channel not taken yet; nullopt when there is none
    // (no system call: the session's packet loop accepted them).
    [[nodiscard]] std::optional<forwarded_open> take_forwarded();
    // Called before asking the server for a remote forward: until then, a
    // forwarded-tcpip open (which nobody would take) is refused.
    void expect_forwarded() noexcept { forwarded_wanted_ = true; }

    // Sends SSH_MSG_DISCONNECT and releases the socket.
    void disconnect();

    // Marks the session dead without freeing libssh state (channels that
    // still hold the session stay valid): every current and later wait()
    // fails with `disconnected`. For supervisors that noticed a dead peer.
    void abort();

  private:
    // libssh's message callback: accepts forwarded-tcpip opens into
    // forwarded_ once expect_forwarded() was called; anything else gets
    // libssh's default reply.
    static int on_message(ssh_session native, ssh_message msg, void* self);
    session(asio::any_io_executor executor, connect_options opts, session_handle s, int fd);

    asio::awaitable<core::result<void>> handshake(time_point deadline);
    // `e` with why the transport ended (a ProxyCommand's exit status), if known.
    [[nodiscard]] core::error with_transport_cause(core::error e) const;
    asio::awaitable<core::result<void>> verify_host_key(time_point deadline);
    // The server's host certificate for `key`, fetched over a second stream
    // and checked against @cert-authority lines (host_certificate.hpp).
    asio::awaitable<core::result<std::string>> check_certificate_of(ssh_key key,
                                                                    time_point deadline);
    core::result<void> keepalive_tick();

    // A coroutine suspended in wait()/wait_channel(): its timer is cancelled
    // to wake it.
    struct waiter {
        asio::steady_timer* timer = nullptr;
        channel_state* channel = nullptr;  // null: woken by every event
        bool for_write = false;
        bool woken = false;
    };
    asio::awaitable<core::result<void>> suspend(waiter& w, time_point deadline);
    [[nodiscard]] core::result<void> check_open();
    // One read (while anyone waits) and one write (while libssh holds output)
    // wait on the socket at a time; on_ready runs libssh's packet loop once
    // and wakes whom it concerns.
    void arm();
    void on_ready(boost::system::error_code ec, bool readable);
    void wake_waiters(bool all);
    void release_idle_read();

    connect_options opts_;
    ssh_counter_struct received_{};  // libssh counts received packets here; outlives session_
    session_handle session_;
    event_handle event_;
    asio::posix::stream_descriptor fd_;  // not owning: libssh closes the fd
    std::vector<waiter*> waiters_;
    std::vector<channel_state*> woken_channels_;  // wake_waiters' scratch
    bool read_armed_ = false;
    bool write_armed_ = false;
    boost::system::error_code broken_;  // the socket wait failed
    // TCP_QUICKACK after each of the session's first reads. OpenSSH's sshd
    // does not set TCP_NODELAY for sessions without a terminal: after
    // authentication it sends its host keys (hostkeys-00@openssh.com, no
    // reply wanted), and Nagle holds its next small packet (the channel-open
    // confirmation) until we acknowledge those bytes, which Linux delays by
    // up to 40 ms when we have nothing to send: half of a fresh `tunnel exec`.
    // Later reads keep delayed ACKs (a system call per read saved).
    int quick_acks_left_ = 32;
    std::uint64_t activity_ = 0;
    time_point last_activity_;
    keepalive keepalive_;  // ServerAliveInterval/ServerAliveCountMax (ssh/keepalive.hpp)
    std::string fingerprint_;
    known_hosts known_hosts_;        // read once per connect (see connect())
    std::shared_ptr<session> jump_;  // the hop this session is tunnelled through
    std::shared_ptr<stream_pump>
        bridge_;  // moves bytes between the transport (jump_, a WebSocket) and our fd
    std::unique_ptr<agent_forwarder> agent_;  // refuses agent channels unless asked for
    std::deque<forwarded_open> forwarded_;    // freed before session_ (disconnect())
    bool forwarded_wanted_ = false;           // expect_forwarded() was called
};

}  // namespace tunnel::ssh
