#include "exec/executor.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <random>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/spawn.hpp"
#include "ssh/agent_forward.hpp"
#include "ssh/channel.hpp"

namespace tunnel::exec {

namespace {

using ssh::clock_type;
using ssh::time_point;

int signal_number(std::string_view name) {
    static constexpr std::pair<std::string_view, int> table[] = {
        {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"ILL", SIGILL},
        {"ABRT", SIGABRT}, {"FPE", SIGFPE},   {"KILL", SIGKILL}, {"SEGV", SIGSEGV},
        {"PIPE", SIGPIPE}, {"ALRM", SIGALRM}, {"TERM", SIGTERM}, {"USR1", SIGUSR1},
        {"USR2", SIGUSR2}, {"BUS", SIGBUS},
    };
    for (auto [n, v] : table)
        if (n == name) return v;
    return 0;
}

std::string random_token() {
    std::random_device rd;
    return fmt::format("{:08x}{:08x}", rd(), rd());
}

// Reads a regular file (always ready, so plain reads on the strand are fine).
class file_input final : public input_source {
  public:
    explicit file_input(int fd) : fd_(fd) {}
    ~file_input() override { ::close(fd_); }
    asio::awaitable<core::result<std::string>> read() override {
        std::string buf(256 * 1024, '\0');
        ssize_t n = ::read(fd_, buf.data(), buf.size());
        if (n < 0)
            co_return core::fail(core::errc::io_error,
                                 fmt::format("reading stdin: {}", std::strerror(errno)));
        buf.resize(static_cast<std::size_t>(n));
        co_return buf;
    }

  private:
    int fd_;
};

// Reads a pipe or terminal through asio, without blocking the strand.
class stream_input final : public input_source {
  public:
    stream_input(asio::any_io_executor ex, int fd) : fd_(ex, fd) {}
    void cancel() override {
        boost::system::error_code ignored;
        fd_.cancel(ignored);
    }
    asio::awaitable<core::result<std::string>> read() override {
        std::string buf(64 * 1024, '\0');
        boost::system::error_code ec;
        std::size_t n = co_await fd_.async_read_some(asio::buffer(buf),
                                                     asio::redirect_error(asio::use_awaitable, ec));
        if (ec == asio::error::eof) co_return std::string{};
        if (ec)
            co_return core::fail(core::errc::io_error,
                                 fmt::format("reading stdin: {}", ec.message()));
        buf.resize(n);
        co_return buf;
    }

  private:
    asio::posix::stream_descriptor fd_;
};

// Bytes still to send on the channel's stdin, written as the window allows.
struct stdin_state {
    std::string pending;
    bool input_eof = false;
    bool eof_sent = false;
    bool reading = false;
    bool released = true;  // false while sudo still owns stdin (password prompt)
};

// Fills `in->pending` from `src` and wakes the exec loop, until EOF or until
// the command has finished (`done`: `in` is gone then).
asio::awaitable<void> pump_input(std::shared_ptr<input_source> src, std::shared_ptr<bool> done,
                                 stdin_state* in, std::shared_ptr<ssh::session> s) {
    for (;;) {
        auto chunk = co_await src->read();
        if (*done) co_return;
        if (!chunk || chunk->empty()) {
            in->input_eof = true;
            s->notify();
            co_return;
        }
        in->pending += *chunk;
        s->notify();
        // Bounded: do not read more than 1 MiB ahead of the channel.
        while (!*done && in->pending.size() > (1 << 20)) {
            asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(5));
            co_await t.async_wait(asio::use_awaitable);
        }
        if (*done) co_return;
    }
}

// The result once the command ended (on a session of ours or a pooled one).
core::result<exec_result> finish(exec_result result, const command& cmd, time_point started,
                                 time_point exec_started, std::optional<int> exit_status,
                                 std::optional<std::string> exit_signal,
                                 const std::string& stderr_head) {
    result.duration =
        std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - started);
    if (exit_status) result.exit_status = *exit_status;
    if (exit_signal) result.signal = exit_signal;
    if (cmd.timeout && clock_type::now() - exec_started >= *cmd.timeout &&
        (result.exit_status == 124 || result.exit_status == 128 + SIGKILL ||
         // `timeout -k` kills its whole process group, itself included, when
         // the command ignored TERM: the host then reports signal KILL.
         (result.signal && *result.signal == "KILL")))
        result.timed_out = true;
    if (!exit_status && !exit_signal && !result.timed_out) result.exit_status = 255;

    const bool sudo = cmd.sudo || cmd.sudo_user;
    if (sudo && !cmd.sudo_password && result.exit_status == 1 &&
        (stderr_head.find("a password is required") != std::string::npos ||
         stderr_head.find("a terminal is required") != std::string::npos))
        return core::fail(
            core::errc::permission_denied,
            fmt::format("sudo on {} needs a password: allow it without one (NOPASSWD in sudoers) "
                        "or pass --ask-sudo-pass",
                        result.destination));
    return result;
}

}  // namespace

int exec_result::exit_code() const {
    if (timed_out) return 124;
    if (signal) {
        int n = signal_number(*signal);
        return n ? 128 + n : 255;
    }
    return exit_status;
}

core::result<std::unique_ptr<input_source>> open_input(asio::any_io_executor executor,
                                                       const std::string& path) {
    int fd =
        path == "-" ? ::fcntl(0, F_DUPFD_CLOEXEC, 3) : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return core::fail(core::errc::not_found, fmt::format("cannot open stdin source {}: {}",
                                                             path, std::strerror(errno)));
    struct stat st {};
    ::fstat(fd, &st);
    if (S_ISREG(st.st_mode)) return std::make_unique<file_input>(fd);
    if (S_ISDIR(st.st_mode)) {
        ::close(fd);
        return core::fail(core::errc::invalid_argument,
                          fmt::format("stdin source {} is a directory", path));
    }
    return std::make_unique<stream_input>(executor, fd);
}

executor::executor(pool::session_pool& pool, pool::breaker_registry& breakers, command_rules rules)
    : pool_(pool), breakers_(breakers), rules_(std::move(rules)) {}

asio::awaitable<core::result<exec_result>> executor::run(const ssh::connect_options& target,
                                                         const command& cmd, exec_events events,
                                                         run_options options) {
    if (auto v = validate(cmd); !v) co_return tl::unexpected(v.error());
    if (auto allowed =
            cmd.argv.size() == 1 ? rules_.check(cmd.argv.front()) : rules_.check(cmd.argv);
        !allowed)
        co_return tl::unexpected(allowed.error());

    exec_result result;
    result.destination = target.destination();
    const auto started = clock_type::now();

    std::optional<sudo_markers> markers;
    const bool sudo = cmd.sudo || cmd.sudo_user;
    if (sudo && cmd.sudo_password) {
        auto t = random_token();
        markers = sudo_markers{"[tunnel-sudo-" + t + "] password:", "tunnel-sudo-ready-" + t};
    }
    const std::string remote = remote_command(cmd, markers ? &*markers : nullptr);
    spdlog::debug("exec on {}: {}", result.destination, cmd.display());

    std::shared_ptr<input_source> shared_input = std::move(options.input);
    if (pooled_ && !cmd.pty && !markers && !target.forward_agent) {
        std::string stderr_head;  // the first bytes of stderr, to explain sudo failures
        pooled_request pr;
        pr.target = &target;
        pr.remote_command = remote;
        const auto exec_started = clock_type::now();
        if (cmd.timeout) pr.deadline = exec_started + *cmd.timeout + timeout_grace;
        pr.on_stdout = [&](std::string_view d) {
            if (options.capture) result.out.append(d);
            if (events.on_stdout) events.on_stdout(d);
        };
        pr.on_stderr = [&](std::string_view d) {
            if (stderr_head.size() < 4096)
                stderr_head.append(d.substr(0, 4096 - stderr_head.size()));
            if (options.capture) result.err.append(d);
            if (events.on_stderr) events.on_stderr(d);
        };
        pr.input = shared_input;
        auto running = pooled_->run(std::move(pr));
        auto pooled = co_await std::move(running);
        if (pooled) {
            if (!*pooled) co_return tl::unexpected(pooled->error());
            result.attempts = 1;
            result.timed_out = (*pooled)->cut_off;
            co_return finish(std::move(result), cmd, started, exec_started, (*pooled)->exit_status,
                             (*pooled)->signal, stderr_head);
        }
    }

    core::backoff retry_delays(options.backoff,
                               options.random ? options.random : core::default_random_source());
    std::optional<pool::session_pool::lease> lease;
    std::optional<ssh::channel> ch;
    ssh::agent_grant agent_grant;  // released (agent channels closed) when run() returns
    unsigned stale = 0;            // pooled sessions found dead at channel open: retried for free
    // When the exec request went out: the host's `timeout` starts counting
    // when it gets it, before we see the reply (so a command the host cut
    // off may report 124 a little less than `timeout` after the reply).
    time_point exec_sent{};
    for (;;) {
        ++result.attempts;
        auto& breaker = breakers_.get(result.destination);
        core::result<void> failure;
        if (!breaker.allow()) {
            co_return core::fail(
                core::errc::circuit_open,
                fmt::format(
                    "{} failed {} times in a row; not trying again for {} (circuit breaker)",
                    result.destination, breaker.consecutive_failures(),
                    fmt::format("{}ms", breaker.retry_after().count())));
        }
        auto l = co_await pool_.acquire(target);
        if (!l) {
            if (l.error().before_start()) breaker.on_failure();
            failure = tl::unexpected(l.error());
        } else {
            breaker.on_success();
            const auto setup_deadline = clock_type::now() + target.connect_timeout;
            auto c = co_await ssh::channel::open_session(l->session(), setup_deadline);
            if (!c) {
                if (l->reused() && stale < 3) {
                    // The pooled session died or hit MaxSessions: nothing ran; try another.
                    if (c.error().code == core::errc::channel_failed)
                        l->mark_full();
                    else
                        l->discard();
                    ++stale;
                    --result.attempts;
                    continue;
                }
                co_return tl::unexpected(c.error());
            }
            auto requesting =
                ssh::request_agent_forwarding(*c, target.forward_agent, setup_deadline);
            auto agent = co_await std::move(requesting);
            if (!agent) co_return tl::unexpected(agent.error());
            agent_grant = std::move(*agent);  // forwarding lasts while the command runs
            if (cmd.pty) {
                if (auto p = co_await c->request_pty("xterm-256color", cmd.pty_columns,
                                                     cmd.pty_rows, setup_deadline);
                    !p)
                    co_return tl::unexpected(p.error());
            }
            exec_sent = clock_type::now();
            if (auto e = co_await c->request_exec(remote, setup_deadline); !e)
                co_return tl::unexpected(e.error());
            lease.emplace(std::move(*l));
            ch.emplace(std::move(*c));
            break;
        }
        // Only failures before anything could have run are retried.
        if (!failure.error().before_start() || result.attempts > options.retries)
            co_return tl::unexpected(failure.error());
        auto delay = retry_delays.delay(result.attempts - 1);
        if (events.on_retry) events.on_retry(result.attempts, failure.error(), delay);
        spdlog::info("{}: {}; retrying in {}ms", result.destination, failure.error().message,
                     delay.count());
        asio::steady_timer t(co_await asio::this_coro::executor, delay);
        co_await t.async_wait(asio::use_awaitable);
    }

    // The command runs from here on: nothing below is ever retried.
    const auto exec_started = exec_sent;
    const time_point deadline =
        cmd.timeout ? exec_started + *cmd.timeout + timeout_grace : time_point::max();
    auto& st = ch->state();
    stdin_state in;
    in.released = !markers;
    std::string sudo_scan;    // stderr held back while looking for the sudo markers
    std::string stderr_head;  // the first bytes of stderr, to explain sudo failures
    auto deliver_err = [&](std::string_view data) {
        if (stderr_head.size() < 4096)
            stderr_head.append(data.substr(0, 4096 - stderr_head.size()));
        if (options.capture) result.err.append(data);
        if (events.on_stderr) events.on_stderr(data);
    };

    // Stdin: a reader coroutine fills `in.pending` and wakes the loop below,
    // which writes it out as the channel window allows.
    auto reader_done = std::make_shared<bool>(false);
    std::shared_ptr<input_source> src = std::move(shared_input);
    if (src) {
        // A named coroutine, not a capturing lambda: GCC 12 lost the
        // captured shared_ptrs' references here (the reader's frame freed
        // `reader_done` and `src` while this frame still used them).
        auto ex = co_await asio::this_coro::executor;
        core::spawn(ex, pump_input(src, reader_done, &in, lease->session()), "exec stdin reader");
    } else {
        in.input_eof = true;
    }
    auto stop_reader = [&] {
        *reader_done = true;
        if (src) src->cancel();
    };

    for (;;) {
        ch->drain();
        if (!st.out.empty()) {
            if (options.capture) result.out.append(st.out);
            if (events.on_stdout) events.on_stdout(st.out);
            st.out.clear();
        }
        if (!st.err.empty()) {
            if (markers && !in.released) {
                sudo_scan += st.err;
                st.err.clear();
                if (auto p = sudo_scan.find(markers->prompt); p != std::string::npos) {
                    sudo_scan.erase(p, markers->prompt.size());
                    auto pass = options.sudo_password ? options.sudo_password() : std::nullopt;
                    if (!pass) {
                        stop_reader();
                        ch->close();
                        co_return core::fail(
                            core::errc::permission_denied,
                            fmt::format("sudo on {} asked for a password and none was given",
                                        result.destination));
                    }
                    *pass += '\n';
                    in.pending.insert(0, *pass);  // goes out before any user stdin
                    std::fill(pass->begin(), pass->end(), '\0');
                }
                if (auto r = sudo_scan.find(markers->ready + "\n"); r != std::string::npos) {
                    sudo_scan.erase(r, markers->ready.size() + 1);
                    in.released = true;
                }
                if (in.released && !sudo_scan.empty()) {
                    deliver_err(sudo_scan);
                    sudo_scan.clear();
                }
            } else {
                deliver_err(st.err);
                st.err.clear();
            }
        }
        // Stdin towards the command: the sudo password first, user input once sudo let go.
        while (!in.pending.empty() && !st.closed) {
            std::size_t allowed = in.released ? in.pending.size() : in.pending.find('\n') + 1;
            if (allowed == 0 || allowed > in.pending.size()) break;
            auto w = ch->write_some(std::string_view(in.pending).substr(0, allowed));
            if (!w || *w == 0) break;
            in.pending.erase(0, *w);
        }
        if (in.released && in.input_eof && in.pending.empty() && !in.eof_sent) {
            ch->send_eof();
            in.eof_sent = true;
        }
        if (ch->finished()) break;

        // Wait for the session, the deadline, or the stdin reader's notify().
        auto w = co_await ch->owner().wait(deadline);
        if (!w) {
            if (w.error().code == core::errc::timeout && clock_type::now() >= deadline) {
                // The host did not report the remote timeout in time: cut it off.
                result.timed_out = true;
                ch->send_signal("KILL");
                ch->close();
                break;
            }
            stop_reader();
            lease->discard();
            co_return core::fail(
                core::errc::disconnected,
                fmt::format("{} while running \"{}\"; the command may have run partly",
                            w.error().message, cmd.display()));
        }
    }
    stop_reader();
    if (!sudo_scan.empty()) deliver_err(sudo_scan);

    co_return finish(std::move(result), cmd, started, exec_started, st.exit_status, st.exit_signal,
                     stderr_head);
}

}  // namespace tunnel::exec
