// The server side of an SSH session (the relay's end of a tunnel), running
// libssh non-blocking on one executor (ARCHITECTURE §4, §5):
//
// * the session reads and writes one fd (one end of a socketpair whose other
//   end carries the WebSocket); only that fd is registered with asio, and on
//   readiness libssh runs `ssh_event_dopoll(event, 0)`;
// * `ssh_set_message_callback` answers auth (`none` for the one expected
//   user, nothing else), `tcpip-forward` / `cancel-tcpip-forward` (the
//   decision comes from a handler, so the relay applies its policy) and
//   refuses every other request or channel open;
// * `forwarded-tcpip` channels are opened non-blocking, callbacks set before
//   the open, and writes are clamped to the peer's window;
// * keepalives with a deadline detect a stalled peer.
//
// libssh callbacks only record state; channels are woken after the packet
// loop returns, never from inside it, and no fd is added or removed there.
//
// libssh 0.10 accepts channel data beyond the window it granted and keeps
// what our callback does not take in an unbounded buffer; the session counts
// what it holds per channel and closes a peer that goes past
// server_options::channel_buffer_limit / session_buffer_limit.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "core/wake_signal.hpp"
#include "ssh/handles.hpp"

#include <libssh/server.h>

namespace tunnel::ssh {

// The relay's persistent host key (ed25519) and the libssh bind that hands
// it to every accepted session.
class server_identity {
  public:
    // Loads the OpenSSH private key at `path`, or generates an ed25519 key
    // there (mode 0600) when the file does not exist.
    [[nodiscard]] static core::result<server_identity> load_or_generate(const std::string& path);
    // A key that lives only in memory (dev mode).
    [[nodiscard]] static core::result<server_identity> ephemeral();

    // "SHA256:<base64>", as `ssh-keygen -lf` prints it.
    [[nodiscard]] const std::string& fingerprint() const noexcept { return fingerprint_; }
    [[nodiscard]] ssh_bind native() const noexcept { return bind_.get(); }

  private:
    struct bind_deleter {
        void operator()(ssh_bind b) const noexcept { ssh_bind_free(b); }
    };
    using bind_handle = std::unique_ptr<ssh_bind_struct, bind_deleter>;
    static core::result<server_identity> from_key(key_handle key, const std::string& what);
    server_identity(bind_handle bind, std::string fingerprint)
        : bind_(std::move(bind)), fingerprint_(std::move(fingerprint)) {}
    bind_handle bind_;
    std::string fingerprint_;
};

struct server_options {
    std::string user;  // the only user accepted; auth method `none`
    std::chrono::milliseconds handshake_timeout{10'000};   // key exchange + auth
    std::chrono::milliseconds keepalive_interval{15'000};  // silence before a keepalive; 0 = off
    int keepalive_count_max = 3;                           // unanswered keepalives before giving up
    std::size_t channel_buffer_cap = 1 << 20;              // per channel, bytes from the peer
    // What the relay may hold of the peer's data, per channel (our buffer
    // plus what libssh keeps when that is full) and for all channels. A peer
    // that respects the window never comes near (at most channel_buffer_cap
    // plus ~1.9 MB per channel: libssh's window is 1,280,000 bytes, re-opened
    // at half); one that ignores it is disconnected with errc::resource_exhausted.
    std::size_t channel_buffer_limit = std::size_t{4} << 20;
    std::size_t session_buffer_limit = std::size_t{256} << 20;
};

struct forward_decision {
    bool accepted = false;
    std::uint32_t bound_port = 0;  // answered when the request asked for port 0
    std::string reason;            // why it was refused (for logs; SSH has no reason field)
};

// Agent forwarding a client asked of the server: `auth-agent-req@openssh.com`
// on one of the session's channels, or an `auth-agent@openssh.com` channel
// the client opened (only servers open those).
enum class agent_request { forwarding, channel_open };

struct server_handlers {
    std::function<forward_decision(const std::string& address, std::uint32_t port)> on_forward;
    std::function<void(const std::string& address, std::uint32_t port)> on_cancel;
    std::function<void(const core::error& why)> on_closed;  // once, when the session ends
    // Told of every agent request, to apply and record a policy. The server
    // never opens agent channels and has no agent to offer, so the wire
    // answer does not depend on it: libssh sends no reply to the request,
    // and the channel open is refused.
    std::function<void(agent_request what)> on_agent_request;
};

class server_channel;

class server_session : public std::enable_shared_from_this<server_session> {
  public:
    // Takes `fd` (closed by libssh), runs the key exchange and waits for the
    // client to authenticate as options.user within options.handshake_timeout.
    static asio::awaitable<core::result<std::shared_ptr<server_session>>> accept(
        asio::any_io_executor executor, int fd, const server_identity& identity,
        server_options options, server_handlers handlers);

    server_session(const server_session&) = delete;
    server_session& operator=(const server_session&) = delete;
    ~server_session();

    // Opens a forwarded-tcpip channel to the client for a connection that
    // arrived for `address`:`port` from `origin_ip`:`origin_port`.
    asio::awaitable<core::result<std::unique_ptr<server_channel>>> open_forwarded(
        std::string address, std::uint32_t port, std::string origin_ip, std::uint32_t origin_port,
        std::chrono::steady_clock::time_point deadline);

    // Sends SSH_MSG_DISCONNECT with `reason`, then closes. Idempotent.
    void disconnect(const std::string& reason);

    [[nodiscard]] bool closed() const noexcept { return closed_; }
    [[nodiscard]] const std::string& user() const noexcept { return options_.user; }
    [[nodiscard]] std::string last_error() const;
    [[nodiscard]] asio::any_io_executor executor() { return fd_.get_executor(); }
    [[nodiscard]] ssh_session native() const noexcept { return session_.get(); }

    // Internal (server_channel and the libssh callbacks).
    struct channel_state;
    void attach(channel_state* st);
    void detach(channel_state* st);
    // After any libssh call made outside the packet loop: wake channels whose
    // callbacks ran and re-arm the fd (libssh may have queued output).
    void after_call();

  private:
    friend class server_channel;
    server_session(asio::any_io_executor executor, server_options options, server_handlers handlers,
                   session_handle s, int fd);

    asio::awaitable<core::result<void>> handshake(std::chrono::steady_clock::time_point deadline);
    static int on_message(ssh_session s, ssh_message msg, void* self);
    int handle_message(ssh_message msg);
    void arm();
    void on_ready(boost::system::error_code ec, bool readable);
    void poll();
    void wake_channels(bool packet_loop_ran);
    void check_closed();
    void finish(core::error why);
    void schedule_keepalive();
    void check_buffers();
    void report_agent_requests();
    void close_with(core::error why);

    server_options options_;
    server_handlers handlers_;
    session_handle session_;
    event_handle event_;
    asio::posix::stream_descriptor fd_;  // not owning: libssh closes the fd
    asio::steady_timer keepalive_timer_;
    bool read_armed_ = false;
    bool write_armed_ = false;
    bool authenticated_ = false;
    bool closed_ = false;
    bool in_poll_ = false;
    std::chrono::steady_clock::time_point last_read_;
    bool overflow_closing_ = false;
    int keepalives_unanswered_ = 0;
    std::unique_ptr<core::wake_signal> auth_signal_;
    std::vector<channel_state*> channels_;
    // libssh counts the bytes it reads from the socket here (poll() drains
    // by it); the destructor frees session_ before its members go.
    ssh_counter_struct socket_counter_{};
};

// A forwarded-tcpip channel on a server_session; holds the session so it can
// never outlive it.
class server_channel {
  public:
    ~server_channel();
    server_channel(const server_channel&) = delete;
    server_channel& operator=(const server_channel&) = delete;

    // Bytes from the client not yet consumed.
    [[nodiscard]] std::string_view readable() const noexcept;
    void consume(std::size_t n);
    [[nodiscard]] bool eof() const noexcept;     // the client sent EOF (or closed)
    [[nodiscard]] bool closed() const noexcept;  // channel or session gone

    // Queues up to what the peer's window allows; returns the bytes taken.
    [[nodiscard]] core::result<std::size_t> write_some(std::string_view data);
    void send_eof();
    void close();

    // Wait until the session delivered data, EOF or close for this channel
    // (readable), or its packet loop ran so the window may have grown
    // (writable); false when `deadline` passed first. One waiter each.
    asio::awaitable<bool> wait_readable(std::chrono::steady_clock::time_point deadline);
    asio::awaitable<bool> wait_writable(std::chrono::steady_clock::time_point deadline);

    [[nodiscard]] server_session& session() noexcept { return *session_; }

  private:
    friend class server_session;
    server_channel(std::shared_ptr<server_session> s, channel_handle ch);
    void drain();

    std::shared_ptr<server_session> session_;
    std::unique_ptr<server_session::channel_state> state_;
    std::unique_ptr<ssh_channel_callbacks_struct> callbacks_;
    channel_handle channel_;
};

}  // namespace tunnel::ssh
