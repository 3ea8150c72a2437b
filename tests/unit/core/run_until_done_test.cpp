#include "core/run_until_done.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "core/spawn.hpp"

namespace tunnel::core {
namespace {

using namespace std::chrono_literals;

// Waits `delay` on a timer, then records that it ran to its end.
asio::awaitable<void> finish_later(std::chrono::milliseconds delay, bool* finished) {
    asio::steady_timer timer(co_await asio::this_coro::executor, delay);
    co_await timer.async_wait(asio::use_awaitable);
    *finished = true;
}

// Captures what spdlog's default logger writes while alive.
class captured_log {
  public:
    captured_log() : previous_(spdlog::default_logger()) {
        auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(text_);
        spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", sink));
    }
    ~captured_log() { spdlog::set_default_logger(previous_); }
    captured_log(const captured_log&) = delete;
    captured_log& operator=(const captured_log&) = delete;
    [[nodiscard]] std::string text() const { return text_.str(); }

  private:
    std::ostringstream text_;
    std::shared_ptr<spdlog::logger> previous_;
};

TEST(RunUntilDone, CoroutinesTheTaskStartedFinishBeforeItReturns) {
    // The task is done at once; what it spawned still has 50 ms of work. A
    // context stopped when the task ends would abandon that work half-way.
    asio::io_context io;
    bool task_finished = false;
    bool cleanup_finished = false;
    run_until_done(io, [&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        spawn(ex, finish_later(50ms, &cleanup_finished), "cleanup");
        task_finished = true;
    });
    EXPECT_TRUE(task_finished);
    EXPECT_TRUE(cleanup_finished);
    EXPECT_TRUE(io.stopped());  // ran out of work: nothing left pending
}

TEST(RunUntilDone, ExceptionFromTheTaskIsRethrownOnceTheRestHasFinished) {
    asio::io_context io;
    bool cleanup_finished = false;
    EXPECT_THROW(run_until_done(io,
                                [&]() -> asio::awaitable<void> {
                                    auto ex = co_await asio::this_coro::executor;
                                    spawn(ex, finish_later(20ms, &cleanup_finished), "cleanup");
                                    throw std::runtime_error("task failed");
                                }),
                 std::runtime_error);
    EXPECT_TRUE(cleanup_finished);
}

TEST(RunUntilDone, WorkLeftPendingIsReportedAndStoppedAfterTheGrace) {
    captured_log log;
    asio::io_context io;
    asio::steady_timer forgotten(io);
    bool forgotten_fired = false;
    const auto started = std::chrono::steady_clock::now();
    run_until_done(
        io,
        [&]() -> asio::awaitable<void> {
            forgotten.expires_after(1h);
            forgotten.async_wait([&](boost::system::error_code) { forgotten_fired = true; });
            co_return;
        },
        100ms);
    const auto took = std::chrono::steady_clock::now() - started;
    EXPECT_GE(took, 100ms);
    EXPECT_LT(took, 30s);
    EXPECT_FALSE(forgotten_fired);
    EXPECT_NE(log.text().find("work still pending 100 ms after the command finished"),
              std::string::npos)
        << log.text();
}

TEST(RunUntilDone, NothingIsLoggedWhenEverythingFinishes) {
    captured_log log;
    asio::io_context io;
    bool finished = false;
    run_until_done(
        io, [&]() -> asio::awaitable<void> { co_await finish_later(10ms, &finished); }, 50ms);
    EXPECT_TRUE(finished);
    EXPECT_EQ(log.text(), "");
}

}  // namespace
}  // namespace tunnel::core
