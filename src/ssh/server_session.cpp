#include "ssh/server_session.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/log_text.hpp"
#include "ssh/host_key_verifier.hpp"

namespace tunnel::ssh {

using steady = std::chrono::steady_clock;

// ---------------------------------------------------------------- channel state

struct server_session::channel_state {
    explicit channel_state(const asio::any_io_executor& ex) : signal(ex), write_signal(ex) {}
    std::string in;        // bytes from the peer
    std::size_t head = 0;  // consumed prefix of `in`
    std::size_t cap = 1 << 20;
    std::size_t held_by_libssh[2] = {0, 0};  // data, extended data: what our callback left
    bool eof = false;
    bool closed = false;
    bool dirty = false;           // a callback ran since the last wake-up
    unsigned agent_requests = 0;  // auth-agent-req@openssh.com seen, not yet reported
    // ssh_disconnect() freed the libssh channel (it frees every channel of
    // its session): the server_channel must not touch or free it again.
    bool orphaned = false;
    ssh_channel native = nullptr;
    uint32_t last_window = 0;  // to notice window adjusts libssh took in during a call
    bool last_open = false;
    core::wake_signal signal;        // data, EOF or close arrived
    core::wake_signal write_signal;  // the packet loop ran: the window may have grown

    [[nodiscard]] std::size_t buffered() const noexcept { return in.size() - head; }
    // Everything held for this channel: our buffer and libssh's.
    [[nodiscard]] std::size_t held() const noexcept {
        return buffered() + held_by_libssh[0] + held_by_libssh[1];
    }
};

namespace {

// What one libssh poll reads from the socket at most (MAX_BUF_SIZE in
// libssh's priv.h, 4 KiB up to 0.12), and how many polls one wake-up may run
// while they come back full (256 KiB).
constexpr std::uint64_t libssh_read_size = 4096;
constexpr int drain_polls = 64;

int on_channel_data(ssh_session, ssh_channel, void* data, uint32_t len, int is_stderr, void* user) {
    // `len` is all libssh holds for the channel (it offers its whole buffer
    // on every packet): what we do not take stays there, so it is counted.
    auto& st = *static_cast<server_session::channel_state*>(user);
    st.dirty = true;
    auto& held = st.held_by_libssh[is_stderr ? 1 : 0];
    if (st.buffered() >= st.cap) {
        held = len;  // libssh keeps the rest; drain() picks it up
        return 0;
    }
    std::size_t take = std::min<std::size_t>(len, st.cap - st.buffered());
    st.in.append(static_cast<const char*>(data), take);
    held = len - take;
    return static_cast<int>(take);
}

void on_channel_eof(ssh_session, ssh_channel, void* user) {
    auto& st = *static_cast<server_session::channel_state*>(user);
    st.dirty = true;
    st.eof = true;
}

void on_channel_close(ssh_session, ssh_channel, void* user) {
    auto& st = *static_cast<server_session::channel_state*>(user);
    st.dirty = true;
    st.eof = true;
    st.closed = true;
}

// libssh consumes auth-agent-req@openssh.com itself (it never reaches the
// message callback) and sends no reply: only this callback sees it.
void on_channel_agent_request(ssh_session, ssh_channel, void* user) {
    ++static_cast<server_session::channel_state*>(user)->agent_requests;
}

}  // namespace

// ---------------------------------------------------------------- session

server_session::server_session(asio::any_io_executor executor, server_options options,
                               server_handlers handlers, session_handle s, int fd)
    : options_(std::move(options)),
      handlers_(std::move(handlers)),
      session_(std::move(s)),
      fd_(executor, fd),
      keepalive_timer_(executor),
      last_read_(steady::now()),
      auth_signal_(std::make_unique<core::wake_signal>(executor)) {
    ssh_set_counters(session_.get(), &socket_counter_, nullptr);
}

server_session::~server_session() {
    closed_ = true;
    keepalive_timer_.cancel();
    if (fd_.is_open()) {
        boost::system::error_code ignored;
        fd_.cancel(ignored);
        (void)fd_.release();
    }
    if (event_ && session_) ssh_event_remove_session(event_.get(), session_.get());
    event_.reset();
    if (session_ && ssh_is_connected(session_.get())) ssh_disconnect(session_.get());
    session_.reset();
}

std::string server_session::last_error() const {
    if (!session_) return "session closed";
    const char* e = ssh_get_error(session_.get());
    return e && *e ? e : "connection closed";
}

asio::awaitable<core::result<std::shared_ptr<server_session>>> server_session::accept(
    asio::any_io_executor executor, int fd, const server_identity& identity, server_options options,
    server_handlers handlers) {
    const auto deadline = steady::now() + options.handshake_timeout;
    session_handle s(ssh_new());
    if (!s) {
        ::close(fd);
        co_return core::fail(core::errc::resource_exhausted, "cannot allocate an SSH session");
    }
    // One ssh_bind serves every session; sessions may start on several
    // threads (the relay's workers) and ssh_bind_accept_fd writes the bind's
    // error state: one at a time.
    static std::mutex bind_mutex;
    std::unique_lock bind_lock(bind_mutex);
    if (ssh_bind_accept_fd(identity.native(), s.get(), fd) != SSH_OK) {
        std::string why = ssh_get_error(identity.native());
        bind_lock.unlock();
        ::close(fd);
        co_return core::fail(core::errc::protocol_error,
                             fmt::format("cannot start the SSH server: {}", why));
    }
    bind_lock.unlock();
    ssh_set_blocking(s.get(), 0);
    ssh_set_auth_methods(s.get(), SSH_AUTH_METHOD_NONE);

    std::shared_ptr<server_session> self(
        new server_session(executor, std::move(options), std::move(handlers), std::move(s), fd));
    ssh_set_message_callback(self->session_.get(), &server_session::on_message, self.get());

    if (auto h = co_await self->handshake(deadline); !h) co_return tl::unexpected(h.error());

    self->event_.reset(ssh_event_new());
    ssh_event_add_session(self->event_.get(), self->session_.get());
    self->last_read_ = steady::now();
    self->poll();  // packets that arrived with the last key-exchange message
    self->arm();
    while (!self->authenticated_) {
        if (self->closed_)
            co_return core::fail(
                core::errc::auth_failed,
                fmt::format("SSH client left before authenticating: {}", self->last_error()));
        bool woke = co_await self->auth_signal_->wait(deadline);
        if (!woke && !self->authenticated_) {
            self->disconnect("authentication timed out");
            co_return core::fail(core::errc::timeout, "SSH client did not authenticate in time");
        }
    }
    self->schedule_keepalive();
    co_return self;
}

asio::awaitable<core::result<void>> server_session::handshake(steady::time_point deadline) {
    for (;;) {
        int rc = ssh_handle_key_exchange(session_.get());
        if (rc == SSH_OK) co_return core::result<void>{};
        if (rc != SSH_AGAIN)
            co_return core::fail(core::errc::protocol_error,
                                 fmt::format("SSH key exchange failed: {}", last_error()));
        const bool want_write = (ssh_get_poll_flags(session_.get()) & SSH_WRITE_PENDING) != 0;
        asio::steady_timer timer(fd_.get_executor());
        timer.expires_at(deadline);
        timer.async_wait([this](boost::system::error_code ec) {
            if (!ec && fd_.is_open()) fd_.cancel();
        });
        boost::system::error_code ec;
        co_await fd_.async_wait(want_write ? asio::posix::descriptor_base::wait_write
                                           : asio::posix::descriptor_base::wait_read,
                                asio::redirect_error(asio::use_awaitable, ec));
        timer.cancel();
        if (steady::now() >= deadline)
            co_return core::fail(core::errc::timeout, "SSH key exchange timed out");
        if (ec && ec != asio::error::operation_aborted)
            co_return core::fail(core::errc::disconnected,
                                 fmt::format("SSH key exchange: {}", ec.message()));
    }
}

int server_session::on_message(ssh_session, ssh_message msg, void* self) {
    return static_cast<server_session*>(self)->handle_message(msg);
}

// 0 = answered here, 1 = let libssh send its default (refusal) reply.
int server_session::handle_message(ssh_message msg) {
    const int type = ssh_message_type(msg);
    const int subtype = ssh_message_subtype(msg);
    if (type == SSH_REQUEST_AUTH) {
        const char* user = ssh_message_auth_user(msg);
        if (subtype == SSH_AUTH_METHOD_NONE && user && options_.user == user) {
            ssh_message_auth_reply_success(msg, 0);
            authenticated_ = true;
            return 0;
        }
        spdlog::info("SSH auth refused: user \"{}\" method {} (expected user {:?}, method none)",
                     core::log_text(user ? user : "", 64), subtype, options_.user);
        ssh_message_auth_set_methods(msg, SSH_AUTH_METHOD_NONE);
        return 1;
    }
    if (type == SSH_REQUEST_GLOBAL && authenticated_) {
        if (subtype == SSH_GLOBAL_REQUEST_TCPIP_FORWARD) {
            const char* addr = ssh_message_global_request_address(msg);
            const int port = ssh_message_global_request_port(msg);
            forward_decision d;
            if (handlers_.on_forward)
                d = handlers_.on_forward(addr ? addr : "", static_cast<std::uint32_t>(port));
            if (!d.accepted) return 1;
            ssh_message_global_request_reply_success(msg, static_cast<uint16_t>(d.bound_port));
            return 0;
        }
        if (subtype == SSH_GLOBAL_REQUEST_CANCEL_TCPIP_FORWARD) {
            const char* addr = ssh_message_global_request_address(msg);
            const int port = ssh_message_global_request_port(msg);
            if (handlers_.on_cancel)
                handlers_.on_cancel(addr ? addr : "", static_cast<std::uint32_t>(port));
            ssh_message_global_request_reply_success(msg, 0);
            return 0;
        }
    }
    if (type == SSH_REQUEST_CHANNEL_OPEN && subtype == SSH_CHANNEL_AUTH_AGENT && authenticated_) {
        if (handlers_.on_agent_request) handlers_.on_agent_request(agent_request::channel_open);
        return 1;  // refused: there is no agent here
    }
    return 1;  // session/direct-tcpip channels, exec, other requests: refused
}

void server_session::arm() {
    if (closed_ || !fd_.is_open()) return;
    std::weak_ptr<server_session> weak = weak_from_this();
    if (!read_armed_) {
        read_armed_ = true;
        fd_.async_wait(asio::posix::descriptor_base::wait_read,
                       [weak](boost::system::error_code ec) {
                           if (auto self = weak.lock()) {
                               self->read_armed_ = false;
                               self->on_ready(ec, true);
                           }
                       });
    }
    const bool want_write =
        session_ && (ssh_get_poll_flags(session_.get()) & SSH_WRITE_PENDING) != 0;
    if (want_write && !write_armed_) {
        write_armed_ = true;
        fd_.async_wait(asio::posix::descriptor_base::wait_write,
                       [weak](boost::system::error_code ec) {
                           if (auto self = weak.lock()) {
                               self->write_armed_ = false;
                               self->on_ready(ec, false);
                           }
                       });
    }
}

void server_session::on_ready(boost::system::error_code ec, bool readable) {
    if (closed_) return;
    if (ec == asio::error::operation_aborted) {
        arm();
        return;
    }
    if (ec) {
        finish({core::errc::disconnected, fmt::format("SSH connection failed: {}", ec.message())});
        return;
    }
    if (readable) {
        last_read_ = steady::now();
        keepalives_unanswered_ = 0;
    }
    poll();
    arm();
}

void server_session::poll() {
    if (closed_ || !event_) return;
    in_poll_ = true;
    // libssh reads at most 4 KiB (its MAX_BUF_SIZE) per poll, and a bulk
    // download through the relay came back here once per 4 KiB: an epoll_ctl,
    // an epoll_wait and the bookkeeping below each time (980 syscalls per MiB,
    // docs/benchmarks.md, bulk). While a read comes back full the socket
    // likely holds more: poll again, up to drain_polls times per wake-up
    // (other sessions on this worker wait that long).
    for (int i = 0; i < drain_polls; ++i) {
        const auto read_before = socket_counter_.in_bytes;
        ssh_event_dopoll(event_.get(), 0);
        if (closed_ || socket_counter_.in_bytes - read_before < libssh_read_size) break;
    }
    in_poll_ = false;
    report_agent_requests();
    check_buffers();
    wake_channels(true);
    if (authenticated_) auth_signal_->notify();
    check_closed();
}

void server_session::after_call() {
    if (in_poll_) return;
    report_agent_requests();
    check_buffers();
    wake_channels(false);
    check_closed();
    arm();
}

void server_session::wake_channels(bool packet_loop_ran) {
    // Window adjustments and open confirmations have no callback: a channel
    // is woken when its callbacks ran, or its window or open state changed.
    // After the packet loop, also every channel not open yet (an open
    // failure changes neither); not every channel: with many requests in
    // flight, waking all of them on every packet cost each a resumption,
    // a check and a new wait per packet. After a single libssh call, an
    // opening channel is not woken either (that would spin a waiter that
    // itself makes the call).
    for (auto* st : channels_) {
        const uint32_t window = st->native ? ssh_channel_window_size(st->native) : 0;
        const bool open = st->native && ssh_channel_is_open(st->native);
        const bool changed = st->dirty || window != st->last_window || open != st->last_open;
        st->last_window = window;
        st->last_open = open;
        if (!changed && !(packet_loop_ran && !open)) continue;
        st->dirty = false;
        st->signal.notify();
        st->write_signal.notify();
    }
}

void server_session::check_buffers() {
    if (closed_ || overflow_closing_) return;
    std::size_t total = 0;
    std::size_t worst = 0;
    for (const auto* st : channels_) {
        total += st->held();
        worst = std::max(worst, st->held());
    }
    std::string why;
    if (worst > options_.channel_buffer_limit)
        why = fmt::format(
            "the tunnel client sent {} bytes on one channel that the relay has not forwarded yet "
            "(limit {}): it ignores the SSH window",
            worst, options_.channel_buffer_limit);
    else if (total > options_.session_buffer_limit)
        why = fmt::format(
            "the tunnel client sent {} bytes over its channels that the relay has not forwarded "
            "yet (limit {}): it ignores the SSH window",
            total, options_.session_buffer_limit);
    if (why.empty()) return;
    // Closed from the executor, not from inside whatever libssh call or
    // channel method noticed it.
    overflow_closing_ = true;
    asio::post(fd_.get_executor(), [weak = weak_from_this(), why]() {
        if (auto self = weak.lock()) self->close_with({core::errc::resource_exhausted, why});
    });
}

void server_session::check_closed() {
    if (closed_ || !session_) return;
    if ((ssh_get_status(session_.get()) & (SSH_CLOSED | SSH_CLOSED_ERROR)) ||
        !ssh_is_connected(session_.get()))
        finish(
            {core::errc::disconnected, fmt::format("SSH client disconnected: {}", last_error())});
}

void server_session::finish(core::error why) {
    if (closed_) return;
    closed_ = true;
    keepalive_timer_.cancel();
    if (fd_.is_open()) {
        boost::system::error_code ignored;
        fd_.cancel(ignored);
    }
    for (auto* st : channels_) {
        st->closed = true;
        st->eof = true;
        st->signal.notify();
        st->write_signal.notify();
    }
    auth_signal_->notify();
    if (handlers_.on_closed) {
        auto cb = std::move(handlers_.on_closed);
        handlers_.on_closed = nullptr;
        cb(why);
    }
}

void server_session::disconnect(const std::string& reason) {
    close_with({core::errc::disconnected, reason});
}

void server_session::close_with(core::error why) {
    if (closed_ || !session_) return;
    const std::string reason = why.message.substr(0, 200);
    ssh_session_set_disconnect_message(session_.get(), reason.c_str());
    if (fd_.is_open()) {
        boost::system::error_code ignored;
        fd_.cancel(ignored);
        (void)fd_.release();
    }
    if (event_) {
        ssh_event_remove_session(event_.get(), session_.get());
        event_.reset();
    }
    for (auto* st : channels_) {
        st->orphaned = true;
        st->native = nullptr;
    }
    ssh_disconnect(session_.get());  // sends SSH_MSG_DISCONNECT, closes the fd, frees the channels
    finish(std::move(why));
}

void server_session::schedule_keepalive() {
    if (options_.keepalive_interval.count() <= 0 || closed_) return;
    keepalive_timer_.expires_after(options_.keepalive_interval / 2);
    std::weak_ptr<server_session> weak = weak_from_this();
    keepalive_timer_.async_wait([weak](boost::system::error_code ec) {
        auto self = weak.lock();
        if (ec || !self || self->closed_) return;
        const auto silent = steady::now() - self->last_read_;
        if (silent >= self->options_.keepalive_interval * (self->keepalives_unanswered_ + 1)) {
            if (self->keepalives_unanswered_ >= self->options_.keepalive_count_max) {
                self->finish({core::errc::timeout,
                              fmt::format("SSH client stopped answering keepalives ({} x {} ms)",
                                          self->options_.keepalive_count_max,
                                          self->options_.keepalive_interval.count())});
                return;
            }
            ++self->keepalives_unanswered_;
            ssh_send_keepalive(self->session_.get());
            self->after_call();
        }
        self->schedule_keepalive();
    });
}

void server_session::report_agent_requests() {
    unsigned n = 0;  // counted first: a handler may close channels
    for (auto* st : channels_) n += std::exchange(st->agent_requests, 0u);
    for (; n > 0 && handlers_.on_agent_request; --n)
        handlers_.on_agent_request(agent_request::forwarding);
}

void server_session::attach(channel_state* st) {
    channels_.push_back(st);
}

void server_session::detach(channel_state* st) {
    std::erase(channels_, st);
}

asio::awaitable<core::result<std::unique_ptr<server_channel>>> server_session::open_forwarded(
    std::string address, std::uint32_t port, std::string origin_ip, std::uint32_t origin_port,
    steady::time_point deadline) {
    if (closed_)
        co_return core::fail(core::errc::disconnected, "the tunnel's SSH session is closed");
    channel_handle raw(ssh_channel_new(session_.get()));
    if (!raw)
        co_return core::fail(core::errc::resource_exhausted, "cannot allocate an SSH channel");
    std::unique_ptr<server_channel> ch(new server_channel(shared_from_this(), std::move(raw)));
    ssh_channel c = ch->channel_.get();
    for (;;) {
        int rc = ssh_channel_open_reverse_forward(c, address.c_str(), static_cast<int>(port),
                                                  origin_ip.c_str(), static_cast<int>(origin_port));
        after_call();
        if (rc == SSH_OK) co_return ch;
        if (rc != SSH_AGAIN || closed_)
            co_return core::fail(core::errc::channel_failed,
                                 fmt::format("the tunnel client refused a connection to {}:{}: {}",
                                             address, port, last_error()));
        bool woke = co_await ch->state_->signal.wait(deadline);
        if (!woke)
            co_return core::fail(core::errc::timeout,
                                 "the tunnel client did not open the channel in time");
        if (closed_)  // (a disconnect has freed `c`)
            co_return core::fail(core::errc::disconnected,
                                 "the tunnel's SSH session closed while a channel was opening");
    }
}

// ---------------------------------------------------------------- channel

server_channel::server_channel(std::shared_ptr<server_session> s, channel_handle ch)
    : session_(std::move(s)),
      state_(std::make_unique<server_session::channel_state>(session_->executor())),
      callbacks_(std::make_unique<ssh_channel_callbacks_struct>()),
      channel_(std::move(ch)) {
    state_->cap = session_->options_.channel_buffer_cap;
    auto& t = *callbacks_;
    std::memset(&t, 0, sizeof t);
    t.size = sizeof t;
    t.userdata = state_.get();
    t.channel_data_function = on_channel_data;
    t.channel_eof_function = on_channel_eof;
    t.channel_close_function = on_channel_close;
    t.channel_auth_agent_req_function = on_channel_agent_request;
    ssh_set_channel_callbacks(channel_.get(), &t);
    state_->native = channel_.get();
    session_->attach(state_.get());
}

server_channel::~server_channel() {
    session_->detach(state_.get());
    if (state_->orphaned) {
        (void)channel_.release();  // already freed by ssh_disconnect
        return;
    }
    if (channel_) {
        ssh_remove_channel_callbacks(channel_.get(), callbacks_.get());
        state_->native = nullptr;
        if (!session_->closed() && ssh_channel_is_open(channel_.get())) {
            ssh_channel_close(channel_.get());
            channel_.reset();
            session_->after_call();
        }
    }
}

std::string_view server_channel::readable() const noexcept {
    return std::string_view(state_->in).substr(state_->head);
}

void server_channel::consume(std::size_t n) {
    auto& st = *state_;
    st.head = std::min(st.head + n, st.in.size());
    if (st.head == st.in.size()) {
        st.in.clear();
        st.head = 0;
    } else if (st.head >= st.cap / 2) {
        st.in.erase(0, st.head);
        st.head = 0;
    }
    drain();
}

void server_channel::drain() {
    // Data the callback left in libssh (our buffer was full) is read here.
    auto& st = *state_;
    if (session_->closed() || !channel_) return;
    if (st.held_by_libssh[0] == 0) {
        // The data callback took all libssh had (it is offered everything on
        // every packet): a read would only poll(2) the socket, which the
        // armed wait watches anyway (2 polls per proxied request).
        session_->after_call();
        return;
    }
    char buf[64 * 1024];
    while (st.buffered() < st.cap) {
        int n = ssh_channel_read_nonblocking(
            channel_.get(), buf,
            static_cast<uint32_t>(std::min(sizeof buf, st.cap - st.buffered())), 0);
        if (n <= 0) break;
        st.in.append(buf, static_cast<std::size_t>(n));
        st.held_by_libssh[0] -= std::min<std::size_t>(st.held_by_libssh[0], n);
    }
    if (st.buffered() < st.cap) st.held_by_libssh[0] = 0;  // libssh had no more
    session_->after_call();
}

bool server_channel::eof() const noexcept {
    return state_->eof && state_->buffered() == 0;
}

bool server_channel::closed() const noexcept {
    return state_->closed || session_->closed();
}

core::result<std::size_t> server_channel::write_some(std::string_view data) {
    if (closed()) return core::fail(core::errc::disconnected, "the tunnel channel is closed");
    std::size_t n = std::min<std::size_t>(data.size(), ssh_channel_window_size(channel_.get()));
    if (n == 0) return 0;
    int rc = ssh_channel_write(channel_.get(), data.data(), static_cast<uint32_t>(n));
    session_->after_call();
    if (rc == SSH_ERROR)
        return core::fail(core::errc::disconnected,
                          fmt::format("write to the tunnel failed: {}", session_->last_error()));
    return static_cast<std::size_t>(rc);
}

void server_channel::send_eof() {
    if (closed()) return;
    if (ssh_channel_is_open(channel_.get())) ssh_channel_send_eof(channel_.get());
    session_->after_call();
}

void server_channel::close() {
    if (!closed() && ssh_channel_is_open(channel_.get())) ssh_channel_close(channel_.get());
    state_->closed = true;
    state_->dirty = true;  // wake this channel's own waiters
    session_->after_call();
}

asio::awaitable<bool> server_channel::wait_readable(steady::time_point deadline) {
    co_return co_await state_->signal.wait(deadline);
}

asio::awaitable<bool> server_channel::wait_writable(steady::time_point deadline) {
    co_return co_await state_->write_signal.wait(deadline);
}

}  // namespace tunnel::ssh
