#include "ssh/session.hpp"

#include <sys/stat.h>

#include <libssh/server.h>  // ssh_send_keepalive: a global request, valid from clients too

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "ssh/agent_forward.hpp"
#include "ssh/cipher_order.hpp"
#include "ssh/host_key_verifier.hpp"
#include "ssh/jump_bridge.hpp"
#include "ssh/tcp_connect.hpp"

namespace tunnel::ssh {

namespace {

void set_option(ssh_session s, ssh_options_e what, const void* value) {
    ssh_options_set(s, what, value);
}

bool file_exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
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
      last_activity_(clock_type::now()) {}

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
    if (ssh_is_connected(session_.get())) ssh_disconnect(session_.get());
    session_.reset();
    if (bridge_) bridge_->stop();
    bridge_.reset();
    jump_.reset();
}

void session::abort() {
    if (!fd_.is_open()) return;
    boost::system::error_code ignored;
    fd_.cancel(ignored);
    (void)fd_.release();  // libssh still owns (and later closes) the fd
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
    std::string hostkeys = opts.host_key_algorithms.value_or(preferred_host_key_algorithms(opts));
    if (!hostkeys.empty()) set_option(s.get(), SSH_OPTIONS_HOSTKEYS, hostkeys.c_str());
    if (opts.compression) set_option(s.get(), SSH_OPTIONS_COMPRESSION, "yes");
    if (opts.identity_agent)
        set_option(s.get(), SSH_OPTIONS_IDENTITY_AGENT, opts.identity_agent->c_str());
    ssh_set_blocking(s.get(), 0);

    std::shared_ptr<session> self(new session(executor, std::move(opts), std::move(s), fd));
    self->jump_ = std::move(jump);
    self->bridge_ = std::move(bridge);

    if (auto h = co_await self->handshake(deadline); !h) co_return tl::unexpected(h.error());
    if (auto v = self->verify_host_key(); !v) co_return tl::unexpected(v.error());
    if (auto a = co_await self->authenticate(deadline); !a) co_return tl::unexpected(a.error());

    self->agent_ = std::make_unique<agent_forwarder>(*self);
    self->event_.reset(ssh_event_new());
    ssh_event_add_session(self->event_.get(), self->session_.get());
    self->last_activity_ = clock_type::now();
    spdlog::debug("connected to {} (host key {})", self->opts_.destination(), self->fingerprint_);
    co_return self;
}

asio::awaitable<core::result<void>> session::handshake(time_point deadline) {
    auto rc = co_await drive([this] { return ssh_connect(session_.get()); }, SSH_AGAIN, deadline);
    if (!rc) {
        if (rc.error().code == core::errc::timeout)
            co_return core::fail(core::errc::timeout,
                                 fmt::format("SSH handshake with {} timed out (ConnectTimeout)",
                                             opts_.destination()));
        co_return tl::unexpected(rc.error());
    }
    if (*rc != SSH_OK) co_return tl::unexpected(handshake_error(opts_, last_error()));
    co_return core::result<void>{};
}

core::result<void> session::verify_host_key() {
    ssh_key raw = nullptr;
    if (ssh_get_server_publickey(session_.get(), &raw) != SSH_OK)
        return core::fail(
            core::errc::protocol_error,
            fmt::format("{} sent no host key: {}", opts_.destination(), last_error()));
    key_handle key(raw);
    auto checked = check_host_key(opts_, key.get());
    if (!checked) return tl::unexpected(checked.error());
    fingerprint_ = *checked;
    return {};
}

asio::awaitable<core::result<void>> session::authenticate(time_point deadline) {
    ssh_session s = session_.get();
    auto none =
        co_await drive([s] { return ssh_userauth_none(s, nullptr); }, SSH_AUTH_AGAIN, deadline);
    if (!none) co_return tl::unexpected(none.error());
    if (*none == SSH_AUTH_SUCCESS) co_return core::result<void>{};
    if (*none == SSH_AUTH_ERROR)
        co_return core::fail(core::errc::auth_unavailable,
                             fmt::format("{} did not answer the authentication request: {}",
                                         opts_.destination(), last_error()));

    int methods = ssh_userauth_list(s, nullptr);
    std::vector<std::string> tried;
    if ((methods & SSH_AUTH_METHOD_PUBLICKEY) && opts_.pubkey_authentication) {
        if (opts_.use_agent) {
            const char* sock =
                opts_.identity_agent ? opts_.identity_agent->c_str() : std::getenv("SSH_AUTH_SOCK");
            if (sock && *sock && file_exists(sock)) {
                auto rc = co_await drive([s] { return ssh_userauth_agent(s, nullptr); },
                                         SSH_AUTH_AGAIN, deadline);
                if (!rc) co_return tl::unexpected(rc.error());
                if (*rc == SSH_AUTH_SUCCESS) co_return core::result<void>{};
                tried.emplace_back("ssh-agent");
            }
        }
        for (const auto& path : opts_.identity_files) {
            auto ok = co_await try_identity(path, deadline, tried);
            if (!ok) co_return tl::unexpected(ok.error());
            if (*ok) co_return core::result<void>{};
        }
    }
    if ((methods & (SSH_AUTH_METHOD_PASSWORD | SSH_AUTH_METHOD_INTERACTIVE)) &&
        opts_.password_authentication && !opts_.batch_mode && opts_.ask_secret) {
        auto ok = co_await try_password(deadline);
        if (!ok) co_return tl::unexpected(ok.error());
        if (*ok) co_return core::result<void>{};
        tried.emplace_back("password");
    }

    std::vector<std::string> offered;
    if (methods & SSH_AUTH_METHOD_PUBLICKEY) offered.emplace_back("publickey");
    if (methods & SSH_AUTH_METHOD_PASSWORD) offered.emplace_back("password");
    if (methods & SSH_AUTH_METHOD_INTERACTIVE) offered.emplace_back("keyboard-interactive");
    co_return core::fail(
        core::errc::auth_failed,
        fmt::format(
            "permission denied for {} (server accepts: {}; tried: {}): pass the right key with -i, "
            "load it into ssh-agent, or check the server's authorized_keys",
            opts_.destination(),
            offered.empty() ? "none" : fmt::format("{}", fmt::join(offered, ",")),
            tried.empty() ? "nothing" : fmt::format("{}", fmt::join(tried, ", "))));
}

asio::awaitable<core::result<bool>> session::try_identity(const std::string& path,
                                                          time_point deadline,
                                                          std::vector<std::string>& tried) {
    ssh_session s = session_.get();
    if (!file_exists(path)) {
        if (opts_.skip_missing_identities) co_return false;
        co_return core::fail(core::errc::not_found,
                             fmt::format("identity file {} does not exist", path));
    }
    tried.push_back(path);
    ssh_key raw = nullptr;
    int rc = ssh_pki_import_privkey_file(path.c_str(), nullptr, nullptr, nullptr, &raw);
    if (rc != SSH_OK) {
        // Encrypted (or unreadable): ask the server first with the public half,
        // and only prompt for the passphrase when it would accept the key.
        ssh_key pub_raw = nullptr;
        if (ssh_pki_import_pubkey_file((path + ".pub").c_str(), &pub_raw) != SSH_OK) {
            spdlog::debug(
                "skipping identity {}: cannot load it without a passphrase and no .pub beside it",
                path);
            co_return false;
        }
        key_handle pub(pub_raw);
        auto q = co_await drive([&] { return ssh_userauth_try_publickey(s, nullptr, pub.get()); },
                                SSH_AUTH_AGAIN, deadline);
        if (!q) co_return tl::unexpected(q.error());
        if (*q != SSH_AUTH_SUCCESS || !opts_.ask_secret || opts_.batch_mode) co_return false;
        auto pass = opts_.ask_secret(fmt::format("Enter passphrase for key '{}': ", path));
        if (!pass) co_return false;
        rc = ssh_pki_import_privkey_file(path.c_str(), pass->c_str(), nullptr, nullptr, &raw);
        std::fill(pass->begin(), pass->end(), '\0');
        if (rc != SSH_OK) {
            spdlog::warn("wrong passphrase for {}", path);
            co_return false;
        }
    }
    key_handle key(raw);
    auto a = co_await drive([&] { return ssh_userauth_publickey(s, nullptr, key.get()); },
                            SSH_AUTH_AGAIN, deadline);
    if (!a) co_return tl::unexpected(a.error());
    if (*a == SSH_AUTH_ERROR)
        co_return core::fail(
            core::errc::auth_unavailable,
            fmt::format("authentication with {} failed: {}", opts_.destination(), last_error()));
    co_return *a == SSH_AUTH_SUCCESS;
}

asio::awaitable<core::result<bool>> session::try_password(time_point deadline) {
    ssh_session s = session_.get();
    int methods = ssh_userauth_list(s, nullptr);
    for (int attempt = 0; attempt < 3; ++attempt) {  // NumberOfPasswordPrompts
        auto pass = opts_.ask_secret(fmt::format("{}@{}'s password: ", opts_.user, opts_.host));
        if (!pass) co_return false;
        core::result<int> rc;
        if (methods & SSH_AUTH_METHOD_PASSWORD) {
            rc = co_await drive([&] { return ssh_userauth_password(s, nullptr, pass->c_str()); },
                                SSH_AUTH_AGAIN, deadline);
        } else {
            // keyboard-interactive: answer every echo-off prompt with the password.
            rc = co_await drive([s] { return ssh_userauth_kbdint(s, nullptr, nullptr); },
                                SSH_AUTH_AGAIN, deadline);
            while (rc && *rc == SSH_AUTH_INFO) {
                int n = ssh_userauth_kbdint_getnprompts(s);
                for (int i = 0; i < n; ++i)
                    ssh_userauth_kbdint_setanswer(s, static_cast<unsigned>(i), pass->c_str());
                rc = co_await drive([s] { return ssh_userauth_kbdint(s, nullptr, nullptr); },
                                    SSH_AUTH_AGAIN, deadline);
            }
        }
        std::fill(pass->begin(), pass->end(), '\0');
        if (!rc) co_return tl::unexpected(rc.error());
        if (*rc == SSH_AUTH_SUCCESS) co_return true;
        if (*rc == SSH_AUTH_ERROR)
            co_return core::fail(core::errc::auth_unavailable,
                                 fmt::format("password authentication with {} failed: {}",
                                             opts_.destination(), last_error()));
        spdlog::warn("permission denied, please try again");
    }
    co_return false;
}

asio::awaitable<core::result<void>> session::wait(time_point deadline) {
    if (!session_ || !fd_.is_open())
        co_return core::fail(core::errc::disconnected,
                             fmt::format("session to {} is closed", opts_.destination()));

    // Keepalives (ServerAliveInterval) bound how long a silent peer can hold us.
    time_point wake = deadline;
    const bool keepalive = opts_.server_alive_interval.count() > 0 && event_;
    if (keepalive) wake = std::min(wake, last_activity_ + opts_.server_alive_interval);

    const bool want_write = (ssh_get_poll_flags(session_.get()) & SSH_WRITE_PENDING) != 0;
    asio::steady_timer timer(fd_.get_executor());
    timer.expires_at(wake);
    timer.async_wait([this](boost::system::error_code ec) {
        if (!ec && fd_.is_open()) fd_.cancel();
    });
    boost::system::error_code ec;
    ++waiters_;
    const auto what = want_write ? asio::posix::descriptor_base::wait_write
                                 : asio::posix::descriptor_base::wait_read;
    co_await fd_.async_wait(what, asio::redirect_error(asio::use_awaitable, ec));
    --waiters_;
    timer.cancel();
    if (!session_ || !fd_.is_open())
        co_return core::fail(core::errc::disconnected,
                             fmt::format("session to {} is closed", opts_.destination()));

    if (ec == asio::error::operation_aborted) {
        // Woken by a timer (ours or another waiter's) or by a waiter that made progress.
        const auto now = clock_type::now();
        if (now >= deadline)
            co_return core::fail(core::errc::timeout,
                                 fmt::format("{}: deadline passed", opts_.destination()));
        if (keepalive && now >= last_activity_ + opts_.server_alive_interval) {
            if (auto k = keepalive_tick(); !k) co_return k;
        }
        co_return core::result<void>{};
    }
    if (ec)
        co_return core::fail(
            core::errc::disconnected,
            fmt::format("session to {} failed: {}", opts_.destination(), ec.message()));

    last_activity_ = clock_type::now();
    keepalives_unanswered_ = 0;
    if (event_) {
        ssh_event_dopoll(event_.get(), 0);
    } else {
        // Before authentication completes there is no event: the driven libssh
        // call polls the socket itself when it is re-run.
    }
    if (ssh_get_status(session_.get()) & (SSH_CLOSED | SSH_CLOSED_ERROR)) {
        // Wake everyone so they see the session is gone.
        if (waiters_ > 0) fd_.cancel();
        co_return core::fail(
            core::errc::disconnected,
            fmt::format("connection to {} closed: {}", opts_.destination(), last_error()));
    }
    if (waiters_ > 0) fd_.cancel();  // others may have data now
    co_return core::result<void>{};
}

core::result<void> session::keepalive_tick() {
    if (++keepalives_unanswered_ > opts_.server_alive_count_max)
        return core::fail(core::errc::disconnected,
                          fmt::format("{} stopped answering keepalives ({} × {}s): connection lost",
                                      opts_.destination(), opts_.server_alive_count_max,
                                      opts_.server_alive_interval.count()));
    last_activity_ = clock_type::now();
    ssh_send_keepalive(session_.get());
    return {};
}

void session::notify() {
    boost::system::error_code ignored;
    if (fd_.is_open() && waiters_ > 0) fd_.cancel(ignored);
}

bool session::alive() {
    if (!session_ || !fd_.is_open() || !ssh_is_connected(session_.get())) return false;
    if (event_) ssh_event_dopoll(event_.get(), 0);
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
