#include "ssh/channel.hpp"

#include <fmt/format.h>

namespace tunnel::ssh {

namespace {

void note(channel_state& st) {
    st.dirty = true;
    if (st.owner) st.owner->note_activity();
}

int on_data(ssh_session, ssh_channel, void* data, uint32_t len, int is_stderr, void* user) {
    auto& st = *static_cast<channel_state*>(user);
    note(st);
    std::string& buf = is_stderr ? st.err : st.out;
    if (buf.size() >= st.buffer_cap) {
        st.held[is_stderr ? 1 : 0] = true;
        return 0;  // libssh keeps it; drain() picks it up later
    }
    std::size_t take = std::min<std::size_t>(len, st.buffer_cap - buf.size());
    buf.append(static_cast<const char*>(data), take);
    st.taken += take;
    if (take < len) st.held[is_stderr ? 1 : 0] = true;
    return static_cast<int>(take);
}

void on_eof(ssh_session, ssh_channel, void* user) {
    auto& st = *static_cast<channel_state*>(user);
    note(st);
    st.eof = true;
}

void on_close(ssh_session, ssh_channel, void* user) {
    auto& st = *static_cast<channel_state*>(user);
    note(st);
    st.closed = true;
    st.eof = true;
}

void on_exit_status(ssh_session, ssh_channel, int status, void* user) {
    note(*static_cast<channel_state*>(user));
    static_cast<channel_state*>(user)->exit_status = status;
}

void on_exit_signal(ssh_session, ssh_channel, const char* signal, int core, const char*,
                    const char*, void* user) {
    auto& st = *static_cast<channel_state*>(user);
    note(st);
    st.exit_signal = signal ? signal : "";
    st.core_dumped = core != 0;
}

}  // namespace

channel::channel(std::shared_ptr<session> s, channel_handle ch)
    : session_(std::move(s)),
      state_(std::make_unique<channel_state>()),
      callbacks_(std::make_unique<ssh_channel_callbacks_struct>()),
      channel_(std::move(ch)) {
    auto& t = *callbacks_;
    t.size = sizeof(t);
    t.userdata = state_.get();
    t.channel_data_function = on_data;
    t.channel_eof_function = on_eof;
    t.channel_close_function = on_close;
    t.channel_exit_status_function = on_exit_status;
    t.channel_exit_signal_function = on_exit_signal;
    state_->owner = session_.get();
    state_->native = channel_.get();
    ssh_set_channel_callbacks(channel_.get(), &t);
}

channel::~channel() {
    if (!channel_) return;
    if (!session_->native()) {
        // ssh_free() already freed it with the session (session::disconnect).
        (void)channel_.release();
        return;
    }
    if (callbacks_) ssh_remove_channel_callbacks(channel_.get(), callbacks_.get());
}

asio::awaitable<core::result<channel>> channel::open_session(std::shared_ptr<session> s,
                                                             time_point deadline) {
    channel_handle ch(ssh_channel_new(s->native()));
    if (!ch) co_return core::fail(core::errc::resource_exhausted, "cannot allocate an SSH channel");
    ssh_channel raw = ch.get();
    channel c(s, std::move(ch));  // callbacks set before opening (ARCHITECTURE §5)
    auto rc =
        co_await s->drive([raw] { return ssh_channel_open_session(raw); }, SSH_AGAIN, deadline);
    if (!rc) co_return tl::unexpected(rc.error());
    if (*rc != SSH_OK)
        co_return core::fail(core::errc::channel_failed,
                             fmt::format("{} refused a session channel: {}",
                                         s->options().destination(), s->last_error()));
    co_return c;
}

asio::awaitable<core::result<channel>> channel::open_direct_tcpip(std::shared_ptr<session> s,
                                                                  std::string host, uint16_t port,
                                                                  time_point deadline) {
    channel_handle ch(ssh_channel_new(s->native()));
    if (!ch) co_return core::fail(core::errc::resource_exhausted, "cannot allocate an SSH channel");
    ssh_channel raw = ch.get();
    channel c(s, std::move(ch));
    auto rc = co_await s->drive(
        [&] { return ssh_channel_open_forward(raw, host.c_str(), port, "127.0.0.1", 0); },
        SSH_AGAIN, deadline);
    if (!rc) co_return tl::unexpected(rc.error());
    if (*rc != SSH_OK)
        co_return core::fail(core::errc::channel_failed,
                             fmt::format("{} could not open a connection to {}:{}: {}",
                                         s->options().destination(), host, port, s->last_error()));
    co_return c;
}

asio::awaitable<core::result<channel>> channel::open_direct_streamlocal(std::shared_ptr<session> s,
                                                                        std::string path,
                                                                        time_point deadline) {
    channel_handle ch(ssh_channel_new(s->native()));
    if (!ch) co_return core::fail(core::errc::resource_exhausted, "cannot allocate an SSH channel");
    ssh_channel raw = ch.get();
    channel c(s, std::move(ch));
    auto rc = co_await s->drive(
        [&] { return ssh_channel_open_forward_unix(raw, path.c_str(), "127.0.0.1", 0); }, SSH_AGAIN,
        deadline);
    if (!rc) co_return tl::unexpected(rc.error());
    if (*rc != SSH_OK)
        co_return core::fail(core::errc::channel_failed,
                             fmt::format("{} could not open a connection to {}: {}",
                                         s->options().destination(), path, s->last_error()));
    co_return c;
}

std::optional<channel> channel::accept_forwarded(std::shared_ptr<session> s,
                                                 int& destination_port) {
    destination_port = 0;
    auto open = s->take_forwarded();
    if (!open) return std::nullopt;
    destination_port = open->port;
    // Bytes that arrived before the callbacks were set wait in libssh's
    // buffer; drain() picks them up.
    return adopt(std::move(s), std::move(open->channel));
}

channel channel::adopt(std::shared_ptr<session> s, channel_handle ch) {
    ssh_channel raw = ch.get();
    channel c(std::move(s), std::move(ch));
    // Whatever arrived before the callbacks: data waits in libssh's buffer
    // (drain() reads it); EOF and close only show in the channel's flags.
    if (ssh_channel_is_eof(raw)) c.state_->eof = true;
    if (!ssh_channel_is_open(raw)) c.state_->closed = c.state_->eof = true;
    return c;
}

asio::awaitable<core::result<void>> channel::request(const char* what, auto step,
                                                     time_point deadline) {
    auto rc = co_await session_->drive(step, SSH_AGAIN, deadline);
    if (!rc) co_return tl::unexpected(rc.error());
    if (*rc != SSH_OK)
        co_return core::fail(
            core::errc::channel_failed,
            fmt::format("{} refused the {} request: {}", session_->options().destination(), what,
                        session_->last_error()));
    co_return core::result<void>{};
}

asio::awaitable<core::result<void>> channel::request_pty(std::string term, int cols, int rows,
                                                         time_point deadline) {
    ssh_channel raw = channel_.get();
    co_return co_await request(
        "pty", [&] { return ssh_channel_request_pty_size(raw, term.c_str(), cols, rows); },
        deadline);
}

asio::awaitable<core::result<void>> channel::request_exec(std::string command,
                                                          time_point deadline) {
    ssh_channel raw = channel_.get();
    co_return co_await request(
        "exec", [&] { return ssh_channel_request_exec(raw, command.c_str()); }, deadline);
}

asio::awaitable<core::result<void>> channel::request_subsystem(std::string name,
                                                               time_point deadline) {
    ssh_channel raw = channel_.get();
    co_return co_await request(
        "subsystem", [&] { return ssh_channel_request_subsystem(raw, name.c_str()); }, deadline);
}

asio::awaitable<core::result<void>> channel::request_shell(time_point deadline) {
    ssh_channel raw = channel_.get();
    co_return co_await request(
        "shell", [raw] { return ssh_channel_request_shell(raw); }, deadline);
}

asio::awaitable<core::result<void>> channel::request_auth_agent(time_point deadline) {
    ssh_channel raw = channel_.get();
    co_return co_await request(
        "agent forwarding", [raw] { return ssh_channel_request_auth_agent(raw); }, deadline);
}

core::result<void> channel::change_pty_size(int cols, int rows) {
    const auto before = session_->activity();
    int rc = ssh_channel_change_pty_size(channel_.get(), cols, rows);
    if (session_->activity() != before) session_->notify();
    if (rc != SSH_OK)
        return core::fail(core::errc::channel_failed,
                          fmt::format("window-change to {} failed: {}",
                                      session_->options().destination(), session_->last_error()));
    return {};
}

core::result<std::size_t> channel::write_some(std::string_view data) {
    if (!usable())
        return core::fail(core::errc::disconnected, fmt::format("session to {} is closed",
                                                                session_->options().destination()));
    std::size_t n = std::min<std::size_t>(data.size(), window());
    if (n == 0) return 0;
    const auto before = session_->activity();
    const std::size_t window_before = window();
    int rc = ssh_channel_write(channel_.get(), data.data(), static_cast<uint32_t>(n));
    // Its flush runs libssh's packet loop: wake waiters whose channel events it
    // delivered (see session::note_activity), or whose window it reopened.
    const bool window_grew = rc >= 0 && window() > window_before - static_cast<std::size_t>(rc);
    if (session_->activity() != before || window_grew)
        session_->notify();
    else
        session_->watch_output();  // what libssh could not send yet goes when the socket takes it
    if (rc < 0)
        return core::fail(core::errc::disconnected,
                          fmt::format("write to {} failed: {}", session_->options().destination(),
                                      session_->last_error()));
    return static_cast<std::size_t>(rc);
}

std::size_t channel::window() const noexcept {
    return usable() ? ssh_channel_window_size(channel_.get()) : 0;
}

void channel::send_eof() {
    if (usable() && ssh_channel_is_open(channel_.get())) ssh_channel_send_eof(channel_.get());
}

void channel::send_signal(const char* name) {
    if (usable() && ssh_channel_is_open(channel_.get()))
        ssh_channel_request_send_signal(channel_.get(), name);
}

void channel::close() {
    if (usable() && ssh_channel_is_open(channel_.get())) ssh_channel_close(channel_.get());
}

void channel::drain() {
    if (!usable()) {
        state_->closed = state_->eof = true;
        return;
    }
    // libssh's reads run its packet loop, which may deliver other channels'
    // data while their coroutines sleep in session::wait(): wake them.
    // A WINDOW_ADJUST it processed has no callback: a window that grew counts
    // as activity too, so a writer of this channel that sleeps in wait() (the
    // other half of a forward pump) sends again.
    const auto before = session_->activity();
    const std::size_t window_before = window();
    drain_reads();
    if (session_->activity() != before || window() > window_before) session_->notify();
}

void channel::drain_reads() {
    if (state_->read_chunk > 64 * 1024 && state_->taken >= state_->read_chunk / 2) {
        // One large read: libssh grows the receive window to what is asked
        // (a data callback alone keeps it at 1,280,000 bytes).
        state_->taken = 0;
        std::string& dst = state_->out;
        if (dst.size() < state_->buffer_cap) {
            std::string& scratch = state_->scratch;
            scratch.resize(std::min(state_->read_chunk, state_->buffer_cap - dst.size()));
            int n = ssh_channel_read_timeout(channel_.get(), scratch.data(),
                                             static_cast<uint32_t>(scratch.size()), 0, 0);
            if (n > 0) dst.append(scratch.data(), static_cast<std::size_t>(n));
        }
    }
    char buf[64 * 1024];
    for (int is_stderr = 0; is_stderr < 2; ++is_stderr) {
        if (!state_->held[is_stderr]) continue;
        std::string& dst = is_stderr ? state_->err : state_->out;
        while (dst.size() < state_->buffer_cap) {
            int n = ssh_channel_read_nonblocking(
                channel_.get(), buf,
                static_cast<uint32_t>(std::min(sizeof buf, state_->buffer_cap - dst.size())),
                is_stderr);
            if (n <= 0) break;
            dst.append(buf, static_cast<std::size_t>(n));
            state_->taken += static_cast<std::size_t>(n);
        }
        // Room left: libssh had no more (its read returned nothing).
        if (dst.size() < state_->buffer_cap) state_->held[is_stderr] = false;
    }
}

}  // namespace tunnel::ssh
