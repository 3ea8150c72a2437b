// libtunnel's executor, session pool and SSH session used directly in an
// asio::io_context, against real OpenSSH servers on 127.0.0.1.
#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/asio.hpp"
#include "exec/executor.hpp"
#include "pool/circuit_breaker.hpp"
#include "pool/session_pool.hpp"
#include "ssh/session.hpp"
#include "support/net.hpp"
#include "support/process.hpp"
#include "support/sshd_fixture.hpp"
#include "support/sshd_target.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

std::size_t count_of(const std::string& text, std::string_view needle) {
    std::size_t n = 0;
    for (auto p = text.find(needle); p != std::string::npos;
         p = text.find(needle, p + needle.size()))
        ++n;
    return n;
}

exec::command shell(std::string text) {
    exec::command c;
    c.argv = {std::move(text)};
    return c;
}

exec::run_options capturing() {
    exec::run_options o;
    o.capture = true;
    return o;
}

// Runs one coroutine to completion on `io` and returns its value.
template <class T>
T run_on(asio::io_context& io, asio::awaitable<T> work) {
    std::optional<T> out;
    io.restart();
    asio::co_spawn(
        io, [&]() -> asio::awaitable<void> { out.emplace(co_await std::move(work)); },
        [](std::exception_ptr e) {
            if (e) std::rethrow_exception(e);
        });
    io.run();
    return std::move(*out);
}

// A pool whose connector counts the sessions it really opens.
struct counted_pool {
    explicit counted_pool(asio::io_context& io, pool::pool_limits limits = {})
        : pool(io.get_executor(), limits, core::system_clock_source(),
               [this](asio::any_io_executor ex, ssh::connect_options o) {
                   ++connects;
                   return ssh::session::connect(ex, std::move(o));
               }) {}
    std::atomic<int> connects{0};
    pool::session_pool pool;
};

std::string describe(const core::result<exec::exec_result>& r) {
    if (!r)
        return "error " + std::string(core::to_string(r.error().code)) + ": " + r.error().message;
    return "exit " + std::to_string(r->exit_code()) + " out [" + r->out + "] err [" + r->err + "]";
}

sshd_options two_sessions() {
    sshd_options o;
    o.max_sessions = 2;
    return o;
}

class ExecLibrary : public ::testing::Test {
  protected:
    void SetUp() override { start_sshd(); }
    void start_sshd(sshd_options options = {}) {
        auto s = sshd_fixture::start(std::move(options));
        ASSERT_TRUE(s) << s.error().message;
        sshd.emplace(std::move(*s));
    }
    std::optional<sshd_fixture> sshd;
    asio::io_context io;
    pool::breaker_registry breakers{{5, 30s}};
};

TEST_F(ExecLibrary, SessionConnectsAndReportsHostKeyFingerprint) {
    auto s = run_on(io, ssh::session::connect(io.get_executor(), target_of(*sshd)));
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_TRUE((*s)->alive());
    EXPECT_EQ((*s)->options().destination(), "root@127.0.0.1:" + std::to_string(sshd->port()));

    auto dir = temp_dir::create("tunnel-fp");
    ASSERT_TRUE(dir);
    ASSERT_TRUE(write_text_file(dir->file("host.pub"), sshd->host_pubkey() + "\n"));
    auto keygen = run({"ssh-keygen", "-l", "-E", "sha256", "-f", dir->file("host.pub")});
    ASSERT_TRUE(keygen.ok()) << keygen.describe();
    EXPECT_NE(keygen.out.find((*s)->host_key_fingerprint()), std::string::npos)
        << (*s)->host_key_fingerprint() << " vs " << keygen.out;
    EXPECT_EQ((*s)->host_key_fingerprint().rfind("SHA256:", 0), 0u);
    (*s)->disconnect();
    EXPECT_FALSE((*s)->alive());
}

TEST_F(ExecLibrary, StreamsEventsAndCapturesOutput) {
    counted_pool p(io);
    exec::executor runner(p.pool, breakers);
    std::string streamed_out, streamed_err;
    exec::exec_events events;
    events.on_stdout = [&](std::string_view d) { streamed_out += d; };
    events.on_stderr = [&](std::string_view d) { streamed_err += d; };
    auto r = run_on(io, runner.run(target_of(*sshd), shell("echo o; echo e >&2; exit 7"),
                                   std::move(events), capturing()));
    ASSERT_TRUE(r) << describe(r);
    EXPECT_EQ(r->exit_code(), 7);
    EXPECT_EQ(r->out, "o\n");
    EXPECT_EQ(r->err, "e\n");
    EXPECT_EQ(streamed_out, "o\n");
    EXPECT_EQ(streamed_err, "e\n");
    EXPECT_EQ(r->attempts, 1u);
}

TEST_F(ExecLibrary, TimeoutReportsTimedOut) {
    counted_pool p(io);
    exec::executor runner(p.pool, breakers);
    auto cmd = shell("sleep 30.4242; echo never");
    cmd.timeout = 500ms;
    const auto t0 = steady::now();
    auto r = run_on(io, runner.run(target_of(*sshd), cmd, {}, capturing()));
    ASSERT_TRUE(r) << describe(r);
    EXPECT_TRUE(r->timed_out);
    EXPECT_EQ(r->exit_code(), 124);
    EXPECT_EQ(r->out, "");
    EXPECT_LT(steady::now() - t0, 4s);
}

// --- circuit breaker -------------------------------------------------------

TEST_F(ExecLibrary, CircuitBreakerFailsFastWithoutConnecting) {
    sshd->stop();
    pool::breaker_registry strict_breakers({2, 30s});
    counted_pool p(io);
    exec::executor runner(p.pool, strict_breakers);
    const auto target = target_of(*sshd);

    for (int i = 0; i < 2; ++i) {
        auto r = run_on(io, runner.run(target, shell("true")));
        ASSERT_FALSE(r) << "attempt " << i << " reached a stopped server";
        EXPECT_EQ(r.error().code, core::errc::connection_failed) << r.error().message;
    }
    EXPECT_EQ(p.connects.load(), 2);
    EXPECT_EQ(strict_breakers.get(target.destination()).state(), pool::breaker_state::open);

    const auto t0 = steady::now();
    auto third = run_on(io, runner.run(target, shell("true")));
    const auto took = steady::now() - t0;
    ASSERT_FALSE(third);
    EXPECT_EQ(third.error().code, core::errc::circuit_open) << third.error().message;
    EXPECT_LT(took, 50ms);
    EXPECT_EQ(p.connects.load(), 2) << "an open breaker must not connect";

    // Other destinations are not affected by this host's breaker.
    auto other = sshd_fixture::start();
    ASSERT_TRUE(other) << other.error().message;
    auto ok = run_on(io, runner.run(target_of(*other), shell("true")));
    EXPECT_TRUE(ok) << describe(ok);
}

TEST_F(ExecLibrary, RetriesStopAtTheBreaker) {
    // --retries larger than the breaker threshold: the breaker cuts it short.
    sshd->stop();
    pool::breaker_registry strict_breakers({2, 30s});
    counted_pool p(io);
    exec::executor runner(p.pool, strict_breakers);
    auto options = exec::run_options{};
    options.retries = 5;
    options.backoff = {1ms, 1ms, 0};
    unsigned retries_seen = 0;
    exec::exec_events events;
    events.on_retry = [&](unsigned, const core::error&, std::chrono::milliseconds) {
        ++retries_seen;
    };
    auto r = run_on(
        io, runner.run(target_of(*sshd), shell("true"), std::move(events), std::move(options)));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, core::errc::circuit_open) << r.error().message;
    EXPECT_EQ(p.connects.load(), 2);
    EXPECT_EQ(retries_seen, 2u);
}

// --- pool ------------------------------------------------------------------

TEST_F(ExecLibrary, SequentialExecsReuseOneSession) {
    counted_pool p(io);
    exec::executor runner(p.pool, breakers);
    const auto target = target_of(*sshd);
    for (int i = 0; i < 20; ++i) {
        auto r =
            run_on(io, runner.run(target, shell("echo " + std::to_string(i)), {}, capturing()));
        ASSERT_TRUE(r) << i << ": " << describe(r);
        EXPECT_EQ(r->exit_code(), 0);
        EXPECT_EQ(r->out, std::to_string(i) + "\n");
    }
    EXPECT_EQ(p.pool.session_count(), 1u);
    EXPECT_EQ(p.pool.session_count(target.destination()), 1u);
    EXPECT_EQ(p.connects.load(), 1);
    EXPECT_EQ(count_of(sshd->log(), "Accepted publickey for root"), 1u) << sshd->log();
}

// Runs `n` commands at once (each `sleep hold; echo i`) and checks every one.
void run_concurrently(asio::io_context& io, exec::executor& runner,
                      const ssh::connect_options& target, int n, const char* hold) {
    std::vector<std::optional<core::result<exec::exec_result>>> results(
        static_cast<std::size_t>(n));
    io.restart();
    for (int i = 0; i < n; ++i) {
        asio::co_spawn(
            io,
            [&, i]() -> asio::awaitable<void> {
                results[static_cast<std::size_t>(i)] = co_await runner.run(
                    target, shell(std::string("sleep ") + hold + "; echo " + std::to_string(i)), {},
                    capturing());
            },
            [](std::exception_ptr e) {
                if (e) std::rethrow_exception(e);
            });
    }
    io.run();
    for (int i = 0; i < n; ++i) {
        const auto& r = results[static_cast<std::size_t>(i)];
        ASSERT_TRUE(r.has_value()) << i << " never finished";
        ASSERT_TRUE(*r) << i << ": " << describe(*r);
        EXPECT_EQ((*r)->exit_code(), 0) << i << ": " << describe(*r);
        EXPECT_EQ((*r)->out, std::to_string(i) + "\n") << i;
    }
}

// Regression: a cold pool opened one session per concurrent caller (8 here,
// beyond max_sessions_per_destination = 4) because connects in flight were
// not counted per destination; callers now wait for the connect in flight.
TEST_F(ExecLibrary, ConcurrentExecsShareSessions) {
    counted_pool p(io);
    exec::executor runner(p.pool, breakers);
    const auto t0 = steady::now();
    run_concurrently(io, runner, target_of(*sshd), 8, "0.5");
    EXPECT_LT(steady::now() - t0, 3s) << "the commands did not run in parallel";
    EXPECT_LE(p.pool.session_count(), 2u);
    EXPECT_LE(p.connects.load(), 2) << "8 channels fit on one session (MaxSessions 10)";
}

TEST_F(ExecLibrary, ConcurrentExecsOnAWarmPoolShareOneSession) {
    counted_pool p(io);
    exec::executor runner(p.pool, breakers);
    auto warm = run_on(io, runner.run(target_of(*sshd), shell("true")));
    ASSERT_TRUE(warm) << describe(warm);
    run_concurrently(io, runner, target_of(*sshd), 8, "0.3");
    EXPECT_EQ(p.pool.session_count(), 1u);
    EXPECT_EQ(p.connects.load(), 1);
}

TEST_F(ExecLibrary, ServerMaxSessionsTwoStillRunsSixConcurrentExecs) {
    start_sshd(two_sessions());
    counted_pool p(io);
    exec::executor runner(p.pool, breakers);
    auto warm = run_on(io, runner.run(target_of(*sshd), shell("true")));
    ASSERT_TRUE(warm) << describe(warm);
    run_concurrently(io, runner, target_of(*sshd), 6, "0.5");
    EXPECT_GE(p.pool.session_count(), 3u) << "6 channels need at least 3 sessions at MaxSessions 2";
    EXPECT_LE(p.pool.session_count(), p.pool.limits().max_sessions_per_destination);
}

TEST_F(ExecLibrary, ServerMaxSessionsTwoFromColdStart) {
    start_sshd(two_sessions());
    counted_pool p(io);
    exec::executor runner(p.pool, breakers);
    run_concurrently(io, runner, target_of(*sshd), 6, "0.5");
    EXPECT_LE(p.pool.session_count(), p.pool.limits().max_sessions_per_destination);
}

TEST_F(ExecLibrary, DeadPooledSessionIsReplaced) {
    counted_pool p(io);
    exec::executor runner(p.pool, breakers);
    const auto target = target_of(*sshd);
    auto first = run_on(io, runner.run(target, shell("echo one"), {}, capturing()));
    ASSERT_TRUE(first) << describe(first);
    EXPECT_EQ(first->out, "one\n");

    auto restarted = sshd->restart();  // kills the session the pool holds
    ASSERT_TRUE(restarted) << restarted.error().message;

    auto second = run_on(io, runner.run(target, shell("echo two"), {}, capturing()));
    ASSERT_TRUE(second) << describe(second) << "\nsshd log:\n" << sshd->log();
    EXPECT_EQ(second->out, "two\n");
    EXPECT_EQ(second->attempts, 1u) << "a dead pooled session is not a failed attempt";
    EXPECT_EQ(p.connects.load(), 2);
    p.pool.evict_expired();  // the dead entry goes at the next acquire or eviction pass
    EXPECT_EQ(p.pool.session_count(), 1u) << "the dead session is dropped";
}

}  // namespace
}  // namespace tunnel::test
