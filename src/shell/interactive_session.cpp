#include "shell/interactive_session.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <csignal>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/spawn.hpp"
#include "core/wake_signal.hpp"
#include "shell/escape_filter.hpp"
#include "ssh/agent_forward.hpp"
#include "ssh/channel.hpp"

namespace tunnel::shell {

namespace {

using ssh::clock_type;
using ssh::time_point;

// How long output still queued for a slow stdout/stderr may take once the
// session has ended before it is dropped.
constexpr std::chrono::seconds flush_limit{10};

// A duplicate of `fd` for asio (which sets O_NONBLOCK on it; the caller
// restores the flags), or -1 when fd is closed.
int duplicate(int fd) {
    return ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

// Bytes for one local fd, written by a coroutine of its own so a slow
// terminal or pipe never blocks the session.
struct output_queue {
    output_queue(asio::any_io_executor ex, int fd) : wake(ex), descriptor(ex) {
        if (fd >= 0) descriptor.assign(fd);
    }
    core::wake_signal wake;
    asio::posix::stream_descriptor descriptor;
    std::string pending;
    bool failed = false;  // the reader went away: output is dropped from now on
};

struct pump_state {
    pump_state(asio::any_io_executor ex, std::shared_ptr<ssh::session> s,
               const interactive_options& opts, bool escapes)
        : session(std::move(s)),
          filter(escapes ? opts.escape_char : std::nullopt),
          escape_char(escapes ? opts.escape_char : std::nullopt),
          cap(opts.buffer_cap),
          input(ex),
          input_room(ex),
          out(ex, duplicate(opts.output_fd)),
          err(ex, duplicate(opts.error_fd)),
          writers_done(ex),
          window_signals(ex),
          stop_signals(ex) {}

    std::shared_ptr<ssh::session> session;
    escape_filter filter;
    std::optional<char> escape_char;
    std::size_t cap;

    asio::posix::stream_descriptor input;
    core::wake_signal input_room;  // to_remote shrank
    std::string to_remote;         // typed bytes the channel has not taken yet
    bool input_eof = false;
    bool disconnect = false;  // ~.
    bool resized = false;     // SIGWINCH seen
    int stop_signal = 0;

    output_queue out;
    output_queue err;
    int writers = 0;
    core::wake_signal writers_done;

    asio::signal_set window_signals;
    asio::signal_set stop_signals;
    bool finished = false;  // the session ended: helpers stop
};

void queue_output(pump_state& st, output_queue& q, std::string& data, bool force) {
    if (data.empty()) return;
    if (q.failed || !q.descriptor.is_open()) {
        data.clear();
        return;
    }
    if (!force && q.pending.size() >= st.cap) return;  // the channel buffer holds it meanwhile
    q.pending += data;
    data.clear();
    q.wake.notify();
}

asio::awaitable<void> write_output(std::shared_ptr<pump_state> st, output_queue* q) {
    while (!q->failed) {
        if (q->pending.empty()) {
            if (st->finished) break;
            co_await q->wake.wait(time_point::max());
            continue;
        }
        std::string chunk;
        chunk.swap(q->pending);
        boost::system::error_code ec;
        co_await asio::async_write(q->descriptor, asio::buffer(chunk),
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            q->failed = true;  // EPIPE, or cancelled after the flush limit
            q->pending.clear();
            break;
        }
        st->session->notify();  // room for more: the pump loop may take the channel's next bytes
    }
    --st->writers;
    st->writers_done.notify();
}

asio::awaitable<void> read_input(std::shared_ptr<pump_state> st) {
    std::string buf(16 * 1024, '\0');
    for (;;) {
        while (!st->finished && st->to_remote.size() >= st->cap)
            co_await st->input_room.wait(time_point::max());
        if (st->finished) co_return;
        boost::system::error_code ec;
        const std::size_t n = co_await st->input.async_read_some(
            asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
        if (st->finished) co_return;
        if (ec || n == 0) {  // EOF, or EIO from a terminal that hung up
            if (ec && ec != asio::error::eof) spdlog::debug("reading stdin: {}", ec.message());
            st->input_eof = true;
            st->session->notify();
            co_return;
        }
        auto step = st->filter.feed(std::string_view(buf.data(), n));
        st->to_remote += step.forward;
        if (step.help && st->escape_char) {
            std::string help = escape_help(*st->escape_char);
            queue_output(*st, st->err, help, true);
        }
        if (step.disconnect) {
            st->disconnect = true;
            st->session->notify();
            co_return;
        }
        st->session->notify();
    }
}

// The helpers below may first run after the session already ended (a
// command that finished during its exec request): they check `finished`
// before they wait, since cancel() only reaches waits already started.
asio::awaitable<void> watch_window(std::shared_ptr<pump_state> st) {
    while (!st->finished) {
        boost::system::error_code ec;
        co_await st->window_signals.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        if (ec || st->finished) co_return;
        st->resized = true;
        st->session->notify();
    }
}

asio::awaitable<void> watch_stop(std::shared_ptr<pump_state> st) {
    if (st->finished) co_return;
    boost::system::error_code ec;
    const int sig =
        co_await st->stop_signals.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ec || st->finished) co_return;
    st->stop_signal = sig;
    st->session->notify();
}

// ssh leaves alone the stop signals its parent told it to ignore (nohup).
bool ignored(int sig) {
    struct sigaction current {};
    return ::sigaction(sig, nullptr, &current) == 0 && current.sa_handler == SIG_IGN;
}

}  // namespace

asio::awaitable<core::result<interactive_outcome>> run_interactive(std::shared_ptr<ssh::session> s,
                                                                   interactive_options opts) {
    const auto setup_deadline = clock_type::now() + s->options().connect_timeout;
    auto opened = co_await ssh::channel::open_session(s, setup_deadline);
    if (!opened) co_return tl::unexpected(opened.error());
    ssh::channel& ch = *opened;
    // Agent forwarding lasts while this shell or command runs.
    auto requesting = ssh::request_agent_forwarding(ch, s->options().forward_agent, setup_deadline);
    auto agent = co_await std::move(requesting);
    if (!agent) co_return tl::unexpected(agent.error());
    const ssh::agent_grant agent_grant = std::move(*agent);

    interactive_outcome outcome;
    if (opts.pty) {
        auto p =
            co_await ch.request_pty(opts.term, opts.size.columns, opts.size.rows, setup_deadline);
        if (p) {
            outcome.pty = true;
        } else if (p.error().code == core::errc::channel_failed) {
            // As ssh: say so and carry on without a terminal.
            fmt::print(stderr, "tunnel: PTY allocation request failed: {}\n", p.error().message);
        } else {
            co_return tl::unexpected(p.error());
        }
    }
    if (opts.command) {
        auto e = co_await ch.request_exec(*opts.command, setup_deadline);
        if (!e) co_return tl::unexpected(e.error());
    } else {
        auto e = co_await ch.request_shell(setup_deadline);
        if (!e) co_return tl::unexpected(e.error());
    }

    auto ex = co_await asio::this_coro::executor;
    // Escapes follow the pty request, as in ssh (-tt with piped stdin has them too).
    auto st = std::make_shared<pump_state>(ex, s, opts, opts.pty);

    if (outcome.pty) st->window_signals.add(SIGWINCH);
    for (int sig : {SIGTERM, SIGHUP, SIGINT, SIGQUIT})
        if (!ignored(sig)) st->stop_signals.add(sig);

    std::optional<raw_mode> raw;
    if (outcome.pty && opts.raw_terminal && is_terminal(opts.input_fd)) {
        auto r = raw_mode::enter(opts.input_fd);
        if (r)
            raw.emplace(std::move(*r));
        else
            spdlog::warn("{}; the terminal stays as it is", r.error().message);
    }

    if (int in = duplicate(opts.input_fd); in >= 0)
        st->input.assign(in);
    else
        st->input_eof = true;
    if (st->input.is_open()) core::spawn(ex, read_input(st), "ssh stdin reader");
    st->writers = 2;
    core::spawn(ex, write_output(st, &st->out), "ssh stdout writer");
    core::spawn(ex, write_output(st, &st->err), "ssh stderr writer");
    if (outcome.pty) core::spawn(ex, watch_window(st), "ssh window-size watcher");
    core::spawn(ex, watch_stop(st), "ssh stop-signal watcher");

    auto& cs = ch.state();
    bool eof_sent = false;
    std::optional<core::error> lost;
    for (;;) {
        ch.drain();
        queue_output(*st, st->out, cs.out, false);
        queue_output(*st, st->err, cs.err, false);
        if (st->resized && outcome.pty) {
            st->resized = false;
            auto size = read_window_size(opts.input_fd);
            if (!size) size = read_window_size(opts.output_fd);
            if (size) {
                if (auto r = ch.change_pty_size(size->columns, size->rows); !r)
                    spdlog::debug("{}", r.error().message);
            }
        }
        while (!st->to_remote.empty() && !cs.closed) {
            auto w = ch.write_some(st->to_remote);
            if (!w) {
                lost = w.error();
                break;
            }
            if (*w == 0) break;  // the window is closed: wait() wakes us when it reopens
            st->to_remote.erase(0, *w);
            st->input_room.notify();
        }
        if (lost) break;
        if (st->input_eof && st->to_remote.empty() && !eof_sent) {
            ch.send_eof();
            eof_sent = true;
        }
        if (st->disconnect) {
            outcome.escape_disconnect = true;
            break;
        }
        if (st->stop_signal) {
            outcome.local_signal = st->stop_signal;
            break;
        }
        if (ch.finished()) break;
        auto w = co_await s->wait(time_point::max());
        if (!w) {
            lost = w.error();
            break;
        }
    }

    // What the host sent before it closed still goes out.
    if (!lost) ch.drain();
    queue_output(*st, st->out, cs.out, true);
    queue_output(*st, st->err, cs.err, true);
    outcome.exit_status = cs.exit_status;
    outcome.exit_signal = cs.exit_signal;
    ch.close();

    // Stop the helpers: every descriptor and signal set we started is
    // cancelled, so the io_context runs dry once they have returned.
    st->finished = true;
    boost::system::error_code ignored_ec;
    st->input.cancel(ignored_ec);
    st->input_room.notify();
    st->window_signals.cancel(ignored_ec);
    st->stop_signals.cancel(ignored_ec);
    st->out.wake.notify();
    st->err.wake.notify();
    const auto flush_deadline = clock_type::now() + flush_limit;
    while (st->writers > 0) {
        const bool woke = co_await st->writers_done.wait(flush_deadline);
        if (!woke) {
            spdlog::warn("output still not written {}s after the session ended; dropping it",
                         flush_limit.count());
            st->out.failed = st->err.failed = true;  // a writer yet to start gives up too
            st->out.descriptor.cancel(ignored_ec);
            st->err.descriptor.cancel(ignored_ec);
            break;
        }
    }
    raw.reset();  // the terminal is back to normal before anyone prints
    if (lost)
        co_return core::fail(core::errc::disconnected,
                             fmt::format("{}; the session ended", lost->message));
    co_return outcome;
}

}  // namespace tunnel::shell
