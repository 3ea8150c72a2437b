#include "ssh/session.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <fmt/format.h>
#include <libssh/libssh.h>
#include <libssh/server.h>  // the ssh_message API (forwarded-tcpip opens)
#include <spdlog/spdlog.h>

#include "core/log_text.hpp"
#include "ssh/agent_forward.hpp"
#include "ssh/channel.hpp"
#include "ssh/cipher_order.hpp"
#include "ssh/client_auth.hpp"
#include "ssh/crypto_warmup.hpp"
#include "ssh/host_certificate.hpp"
#include "ssh/host_certificate_probe.hpp"
#include "ssh/host_key_verifier.hpp"
#include "ssh/jump_bridge.hpp"
#include "ssh/tcp_connect.hpp"

namespace tunnel::ssh {

namespace {

void set_option(ssh_session s, ssh_options_e what, const void* value) {
    ssh_options_set(s, what, value);
}

// Maps a failed libssh handshake to our coarse conditions: a reset or EOF
// during key exchange is a connection failure (retryable, nothing ran yet).
core::error handshake_error(const connect_options& o, std::string_view detail) {
    auto code = core::errc::connection_failed;
    if (detail.find("negotiat") != std::string_view::npos ||
        detail.find("no match") != std::string_view::npos)
        code = core::errc::protocol_error;
    return {code, fmt::format("SSH handshake with {} failed: {}", o.destination(), detail)};
}

}  // namespace

session::session(asio::any_io_executor executor, connect_options opts, session_handle s, int fd)
    : opts_(std::move(opts)),
      session_(std::move(s)),
      fd_(executor, fd),
      last_activity_(clock_type::now()) {
    ssh_set_counters(session_.get(), nullptr, &received_);
}

session::~session() {
    disconnect();
}

void session::disconnect() {
    if (!session_) return;
    if (fd_.is_open()) {
        boost::system::error_code ignored;
        fd_.cancel(ignored);
        (void)fd_.release();  // libssh owns and closes the fd
    }
    if (event_) {
        ssh_event_remove_session(event_.get(), session_.get());
        event_.reset();
    }
    if (agent_) agent_->release_pending();  // before ssh_free frees the channels
    forwarded_.clear();                     // likewise
    if (ssh_is_connected(session_.get())) ssh_disconnect(session_.get());
    session_.reset();
    if (bridge_) bridge_->stop();
    bridge_.reset();
    // A jump bridge's pumps wait on the jump session: wake them so they see
    // the stop and end (they hold the jump session until then).
    if (jump_) jump_->notify();
    jump_.reset();
    wake_waiters(true);
}

void session::abort() {
    if (!fd_.is_open()) return;
    boost::system::error_code ignored;
    fd_.cancel(ignored);
    (void)fd_.release();  // libssh still owns (and later closes) the fd
    wake_waiters(true);
}

std::string session::last_error() const {
    if (!session_) return "session closed";
    const char* e = ssh_get_error(session_.get());
    return e && *e ? e : "unknown error";
}

asio::awaitable<core::result<std::shared_ptr<session>>> session::connect(
    asio::any_io_executor executor, connect_options opts) {
    const auto deadline = clock_type::now() + opts.connect_timeout;

    // 1. A byte stream to the server: the caller's transport, TCP, or a
    // channel through the last jump hop.
    std::shared_ptr<session> jump;
    std::shared_ptr<stream_pump> bridge;
    bool direct_tcp = false;  // fd is our own TCP connection (not a ProxyCommand, jump or relay)
    int fd = -1;
    if (opts.open_stream) {
        auto opening = opts.open_stream(executor, deadline);
        auto opened = co_await std::move(opening);
        if (!opened) co_return tl::unexpected(opened.error());
        fd = opened->fd;
        bridge = std::move(opened->pump);
    } else if (!opts.jumps.empty()) {
        auto hops = opts.jumps;
        connect_options outer = hops.back();
        hops.pop_back();
        outer.jumps = std::move(hops);  // earlier hops carry this one
        outer.connect_timeout =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
        auto j = co_await connect(executor, outer);
        if (!j) {
            auto e = j.error();
            e.message = fmt::format("via ProxyJump {}: {}", outer.destination(), e.message);
            co_return tl::unexpected(e);
        }
        jump = *j;
        auto b = co_await jump_bridge::open(jump, opts.host, opts.port, deadline);
        if (!b) co_return tl::unexpected(b.error());
        bridge = b->first;
        fd = b->second;
    } else {
        auto c = co_await tcp_connect(executor, opts.host, opts.port, deadline);
        if (!c) co_return tl::unexpected(c.error());
        fd = *c;
        direct_tcp = true;
    }

    // 2. The libssh session over that fd; our own config handling only.
    session_handle s(ssh_new());
    if (!s) {
        ::close(fd);
        if (bridge) bridge->stop();
        co_return core::fail(core::errc::resource_exhausted, "cannot allocate an SSH session");
    }
    int off = 0, on = 1;
    set_option(s.get(), SSH_OPTIONS_PROCESS_CONFIG, &off);
    set_option(s.get(), SSH_OPTIONS_HOST, opts.host.c_str());
    unsigned int port = opts.port;
    set_option(s.get(), SSH_OPTIONS_PORT, &port);
    set_option(s.get(), SSH_OPTIONS_USER, opts.user.c_str());
    set_option(s.get(), SSH_OPTIONS_FD, &fd);
    set_option(s.get(), SSH_OPTIONS_NODELAY, &on);
    set_option(s.get(), SSH_OPTIONS_KNOWNHOSTS, "/dev/null");  // we verify host keys ourselves
    set_option(s.get(), SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null");
    // The user's Ciphers, or ours per direction (cipher_order.hpp).
    const std::string to_server = opts.ciphers.value_or(default_ciphers_to_server());
    const std::string from_server = opts.ciphers.value_or(default_ciphers_from_server());
    set_option(s.get(), SSH_OPTIONS_CIPHERS_C_S, to_server.c_str());
    set_option(s.get(), SSH_OPTIONS_CIPHERS_S_C, from_server.c_str());
    if (opts.macs) {
        set_option(s.get(), SSH_OPTIONS_HMAC_C_S, opts.macs->c_str());
        set_option(s.get(), SSH_OPTIONS_HMAC_S_C, opts.macs->c_str());
    }
    if (opts.kex_algorithms)
        set_option(s.get(), SSH_OPTIONS_KEY_EXCHANGE, opts.kex_algorithms->c_str());
    // known_hosts is read once, here, while the TCP connection is being
    // accepted: the checks after the key exchange then cost no file reads.
    auto kh = load_known_hosts(opts);
    std::string hostkeys = opts.host_key_algorithms ? *opts.host_key_algorithms
                                                    : preferred_host_key_algorithms(opts, kh);
    if (!hostkeys.empty()) set_option(s.get(), SSH_OPTIONS_HOSTKEYS, hostkeys.c_str());
    if (opts.compression) set_option(s.get(), SSH_OPTIONS_COMPRESSION, "yes");
    if (opts.identity_agent)
        set_option(s.get(), SSH_OPTIONS_IDENTITY_AGENT, opts.identity_agent->c_str());
    ssh_set_blocking(s.get(), 0);

    std::shared_ptr<session> self(new session(executor, std::move(opts), std::move(s), fd));
    self->jump_ = std::move(jump);
    self->bridge_ = std::move(bridge);
    self->known_hosts_ = std::move(kh);
    if (!direct_tcp) self->quick_acks_left_ = 0;

    if (auto h = co_await self->handshake(deadline); !h)
        co_return tl::unexpected(self->with_transport_cause(h.error()));
    if (auto v = co_await self->verify_host_key(deadline); !v) co_return tl::unexpected(v.error());
    if (auto a = co_await authenticate(*self, deadline); !a) co_return tl::unexpected(a.error());

    self->agent_ = std::make_unique<agent_forwarder>(*self);
    // Forwarded-tcpip opens are accepted as they arrive (on_message). Asking
    // libssh for them instead (ssh_channel_open_forward_port) runs its packet
    // loop, a poll(2), on every wake-up of whoever asks.
    ssh_set_message_callback(self->session_.get(), &session::on_message, self.get());
    self->event_.reset(ssh_event_new());
    ssh_event_add_session(self->event_.get(), self->session_.get());
    self->last_activity_ = clock_type::now();
    spdlog::debug("connected to {} (host key {})", self->opts_.destination(), self->fingerprint_);
    co_return self;
}

int session::on_message(ssh_session, ssh_message msg, void* data) {
    auto* self = static_cast<session*>(data);
    // Anything else, or an open for a forward we never asked for, gets
    // libssh's default reply: a refusal where one is wanted.
    if (ssh_message_type(msg) != SSH_REQUEST_CHANNEL_OPEN ||
        ssh_message_subtype(msg) != SSH_CHANNEL_FORWARDED_TCPIP || !self->forwarded_wanted_)
        return 1;
    const int port = ssh_message_channel_request_open_destination_port(msg);
    ssh_channel ch = ssh_message_channel_request_open_reply_accept(msg);
    if (ch == nullptr) return 0;  // the confirmation could not be sent: the session is failing
    self->forwarded_.push_back({channel_handle(ch), port});
    self->note_activity();
    return 0;
}

std::optional<session::forwarded_open> session::take_forwarded() {
    if (forwarded_.empty()) return std::nullopt;
    auto open = std::move(forwarded_.front());
    forwarded_.pop_front();
    return open;
}

asio::awaitable<core::result<void>> session::handshake(time_point deadline) {
    // The first step sends our banner; OpenSSL's one-time setup then runs
    // while the server starts up, not after its banner arrived.
    bool banner_sent = false;
    auto rc = co_await drive(
        [this, &banner_sent] {
            const int r = ssh_connect(session_.get());
            if (!banner_sent) {
                banner_sent = true;
                warm_up_crypto();
            }
            return r;
        },
        SSH_AGAIN, deadline);
    if (!rc) {
        // A reset during key exchange is a failure to connect (retryable), as when
        // ssh_connect reports it itself.
        if (rc.error().code == core::errc::disconnected)
            co_return tl::unexpected(handshake_error(opts_, last_error()));
        if (rc.error().code == core::errc::timeout) {
            // Say how far it got, as ssh's "timed out during banner exchange"
            // does: a silent peer is not an SSH server (or is overloaded); a
            // stall after its banner is a key exchange that never finished.
            const char* banner = ssh_get_serverbanner(session_.get());
            const std::string stage =
                banner && *banner
                    ? fmt::format(
                          "the server sent its banner ({}) but the key exchange did not "
                          "finish",
                          core::log_text(banner, 80))
                    : std::string("the server accepted the TCP connection but sent no SSH banner");
            co_return core::fail(core::errc::timeout,
                                 fmt::format("SSH handshake with {} timed out (ConnectTimeout): {}",
                                             opts_.destination(), stage));
        }
        co_return tl::unexpected(rc.error());
    }
    if (*rc != SSH_OK) co_return tl::unexpected(handshake_error(opts_, last_error()));
    co_return core::result<void>{};
}

core::error session::with_transport_cause(core::error e) const {
    if (bridge_)
        if (auto why = bridge_->why_closed(); !why.empty()) e.message += " (" + why + ")";
    return e;
}

asio::awaitable<core::result<void>> session::verify_host_key(time_point deadline) {
    ssh_key raw = nullptr;
    if (ssh_get_server_publickey(session_.get(), &raw) != SSH_OK)
        co_return core::fail(
            core::errc::protocol_error,
            fmt::format("{} sent no host key: {}", opts_.destination(), last_error()));
    key_handle key(raw);
    // @cert-authority: a host certificate for this key, fetched beside the session.
    std::string cert_problem;
    if (wants_host_certificate(opts_, key.get(), known_hosts_)) {
        auto accepted = co_await check_certificate_of(key.get(), deadline);
        if (accepted) {
            fingerprint_ = fingerprint(key.get());
            spdlog::debug("{}: accepted {}", opts_.destination(), *accepted);
            co_return core::result<void>{};
        }
        cert_problem = accepted.error().message;
        spdlog::debug("{}: no valid host certificate: {}", opts_.destination(), cert_problem);
    }
    auto checked = check_host_key(opts_, key.get(), known_hosts_);
    if (!checked) {
        auto e = checked.error();
        if (!cert_problem.empty()) e.message += "; and no valid host certificate: " + cert_problem;
        co_return tl::unexpected(e);
    }
    fingerprint_ = *checked;
    co_return core::result<void>{};
}

asio::awaitable<core::result<std::string>> session::check_certificate_of(ssh_key key,
                                                                         time_point deadline) {
    const std::string algorithm = host_certificate_algorithm(key);
    if (algorithm.empty())
        co_return core::fail(core::errc::host_key_unknown,
                             fmt::format("{} host keys have no certificates",
                                         ssh_key_type_to_char(ssh_key_type(key))));
    // A second stream to the same server, the way the session reached it.
    auto executor = fd_.get_executor();
    int fd = -1;
    std::shared_ptr<stream_pump> pump;
    if (opts_.open_stream) {
        auto opening = opts_.open_stream(executor, deadline);
        auto opened = co_await std::move(opening);
        if (!opened) co_return tl::unexpected(opened.error());
        fd = opened->fd;
        pump = std::move(opened->pump);
    } else if (jump_) {
        auto b = co_await jump_bridge::open(jump_, opts_.host, opts_.port, deadline);
        if (!b) co_return tl::unexpected(b.error());
        pump = b->first;
        fd = b->second;
    } else {
        auto c = co_await tcp_connect(executor, opts_.host, opts_.port, deadline);
        if (!c) co_return tl::unexpected(c.error());
        fd = *c;
    }
    auto fetching = fetch_host_certificate(executor, fd, algorithm, deadline);
    auto blob = co_await std::move(fetching);
    if (pump) pump->stop();
    // A jump bridge's pumps wait on the jump session: wake them so they see
    // the stop (they hold the jump session until they end).
    if (jump_) jump_->notify();
    if (!blob)
        co_return core::fail(
            core::errc::host_key_unknown,
            fmt::format("fetching its host certificate: {}", blob.error().message));
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    co_return check_host_certificate(opts_, key, *blob, now);
}

core::result<void> session::check_open() {
    if (!session_ || !fd_.is_open())
        return core::fail(core::errc::disconnected,
                          fmt::format("session to {} is closed", opts_.destination()));
    if (broken_)
        return core::fail(
            core::errc::disconnected,
            fmt::format("session to {} failed: {}", opts_.destination(), broken_.message()));
    // A read or write inside libssh (a channel drain, a write) that failed
    // (the peer reset the connection) has closed the socket already: a wait
    // on the fd would then only end at the deadline.
    if ((ssh_get_status(session_.get()) & (SSH_CLOSED | SSH_CLOSED_ERROR)) ||
        ssh_get_fd(session_.get()) != fd_.native_handle())
        return core::fail(core::errc::disconnected, fmt::format("connection to {} closed: {}",
                                                                opts_.destination(), last_error()));
    return {};
}

asio::awaitable<core::result<void>> session::wait(time_point deadline) {
    waiter w;
    co_return co_await suspend(w, deadline);
}

asio::awaitable<core::result<void>> session::wait_channel(channel_state& st, bool for_write,
                                                          time_point deadline) {
    // Whatever changed since the caller last looked (it checked its state
    // before calling, but a callback may have run in between: no wake-up is
    // lost).
    const bool open_window = for_write && st.native && session_ && fd_.is_open() &&
                             ssh_channel_window_size(st.native) > 0;
    if (st.dirty || open_window || (for_write && st.closed)) {
        st.dirty = false;
        co_return check_open();
    }
    waiter w;
    w.channel = &st;
    w.for_write = for_write;
    co_return co_await suspend(w, deadline);
}

asio::awaitable<core::result<void>> session::suspend(waiter& w, time_point deadline) {
    if (auto c = check_open(); !c) co_return c;

    // Keepalives (ServerAliveInterval) bound how long a silent peer can hold us.
    time_point wake = deadline;
    const bool keepalive = opts_.server_alive_interval.count() > 0 && event_;
    if (keepalive) wake = std::min(wake, last_activity_ + opts_.server_alive_interval);

    asio::steady_timer timer(fd_.get_executor());
    timer.expires_at(wake);
    w.timer = &timer;
    waiters_.push_back(&w);
    arm();
    // Out of the list however this frame ends: woken (a waker took it out),
    // timed out, or destroyed while suspended (an io_context torn down).
    struct leave {
        session& s;
        waiter& w;
        ~leave() {
            if (w.woken) return;
            std::erase(s.waiters_, &w);
            s.release_idle_read();
        }
    };
    boost::system::error_code ec;
    {
        leave on_exit{*this, w};
        co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    if (auto c = check_open(); !c) co_return c;
    if (!w.woken) {
        // The timer: the deadline, or a keepalive is due.
        const auto now = clock_type::now();
        if (now >= deadline)
            co_return core::fail(core::errc::timeout,
                                 fmt::format("{}: deadline passed", opts_.destination()));
        if (keepalive && now >= last_activity_ + opts_.server_alive_interval) {
            if (auto k = keepalive_tick(); !k) co_return k;
        }
    }
    co_return core::result<void>{};
}

void session::arm() {
    if (!session_ || !fd_.is_open() || broken_) return;
    if (!read_armed_ && !waiters_.empty()) {
        read_armed_ = true;
        fd_.async_wait(asio::posix::descriptor_base::wait_read,
                       [weak = weak_from_this()](boost::system::error_code ec) {
                           if (auto self = weak.lock()) self->on_ready(ec, true);
                       });
    }
    if (!write_armed_ && (ssh_get_poll_flags(session_.get()) & SSH_WRITE_PENDING)) {
        write_armed_ = true;
        fd_.async_wait(asio::posix::descriptor_base::wait_write,
                       [weak = weak_from_this()](boost::system::error_code ec) {
                           if (auto self = weak.lock()) self->on_ready(ec, false);
                       });
    }
}

void session::on_ready(boost::system::error_code ec, bool readable) {
    (readable ? read_armed_ : write_armed_) = false;
    if (!session_ || !fd_.is_open()) {
        wake_waiters(true);  // closed: everyone sees it
        return;
    }
    if (ec == asio::error::operation_aborted) {
        // release_idle_read() cancelled the read wait (and with it a write
        // wait): watch again what is still wanted.
        arm();
        return;
    }
    if (ec) {
        broken_ = ec;
        wake_waiters(true);
        return;
    }
    last_activity_ = clock_type::now();
    keepalive_.heard();
    // Before authentication completes there is no event: the waiting libssh
    // call polls the socket itself when it is re-run.
    if (event_) ssh_event_dopoll(event_.get(), 0);
    if (readable && quick_acks_left_ > 0) {
        // Acknowledge what libssh just read at once: see quick_acks_left_.
        --quick_acks_left_;
        const int one = 1;
        (void)::setsockopt(fd_.native_handle(), IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
    }
    const bool closed = (ssh_get_status(session_.get()) & (SSH_CLOSED | SSH_CLOSED_ERROR)) != 0;
    wake_waiters(closed);
    arm();
}

void session::wake_waiters(bool all) {
    const bool live = session_ && fd_.is_open();
    woken_channels_.clear();
    std::erase_if(waiters_, [&](waiter* w) {
        bool wake = all || !live || !w->channel;
        if (!wake) {
            const channel_state& st = *w->channel;
            wake = st.dirty || st.closed ||
                   (w->for_write && st.native && ssh_channel_window_size(st.native) > 0);
        }
        if (!wake) return false;
        if (w->channel) woken_channels_.push_back(w->channel);
        w->woken = true;
        w->timer->cancel();
        return true;
    });
    for (auto* st : woken_channels_) st->dirty = false;
    release_idle_read();
}

void session::release_idle_read() {
    // A read wait with nobody waiting would keep the io_context busy for as
    // long as an idle pooled session lives (run() would never return).
    // Asio 1.74 cancels a descriptor's waits all together; on_ready re-arms
    // a write wait that is still wanted.
    if (!waiters_.empty() || !read_armed_ || !fd_.is_open()) return;
    boost::system::error_code ignored;
    fd_.cancel(ignored);
}

core::result<void> session::keepalive_tick() {
    last_activity_ = clock_type::now();
    return keepalive_.tick(session_.get(), fd_.native_handle(), opts_.server_alive_count_max,
                           opts_.server_alive_interval, opts_.destination());
}

void session::notify() {
    wake_waiters(false);
    arm();
}

void session::wake(channel_state& st) {
    st.dirty = true;
    notify();
}

bool session::alive() {
    if (!session_ || !fd_.is_open() || !ssh_is_connected(session_.get())) return false;
    const auto before = activity();
    if (event_) ssh_event_dopoll(event_.get(), 0);
    if (activity() != before) notify();
    return ssh_is_connected(session_.get()) &&
           !(ssh_get_status(session_.get()) & (SSH_CLOSED | SSH_CLOSED_ERROR));
}

asio::awaitable<core::result<void>> session::flush(time_point deadline) {
    while (session_ && (ssh_get_poll_flags(session_.get()) & SSH_WRITE_PENDING)) {
        if (auto w = co_await wait(deadline); !w) co_return w;
    }
    co_return core::result<void>{};
}

}  // namespace tunnel::ssh
