// A client session wakes a channel's waiter only for that channel: traffic on
// one channel leaves a coroutine waiting on another asleep (with 32 pooled
// keep-alive channels in `tunnel connect`, waking every waiter on every
// packet cost ~40 system calls per request), while wait() still wakes on
// every event. Against a real OpenSSH sshd on 127.0.0.1, `cat` as the echo.
#include <chrono>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "core/asio.hpp"
#include "core/spawn.hpp"
#include "ssh/channel.hpp"
#include "ssh/session.hpp"
#include "support/sshd_fixture.hpp"
#include "support/sshd_target.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;

asio::awaitable<core::result<ssh::channel>> open_cat(std::shared_ptr<ssh::session> s,
                                                     ssh::time_point deadline) {
    auto ch = co_await ssh::channel::open_session(s, deadline);
    if (!ch) co_return ch;
    if (auto r = co_await ch->request_exec("cat", deadline); !r)
        co_return tl::unexpected(r.error());
    co_return ch;
}

// Writes `text` and waits (on this channel only) until it came back.
asio::awaitable<core::result<void>> echo(ssh::channel& ch, const std::string& text,
                                         ssh::time_point deadline) {
    std::string_view rest = text;
    while (!rest.empty()) {
        auto n = ch.write_some(rest);
        if (!n) co_return tl::unexpected(n.error());
        rest.remove_prefix(*n);
        ch.owner().notify();  // libssh may hold output: watch the socket for writing
        if (!rest.empty())
            if (auto w = co_await ch.wait_writable(deadline); !w) co_return w;
    }
    for (;;) {
        ch.drain();
        if (ch.state().out.size() >= text.size()) break;
        if (auto w = co_await ch.wait_readable(deadline); !w) co_return w;
    }
    if (ch.state().out != text)
        co_return core::fail(core::errc::protocol_error, "echo came back as " + ch.state().out);
    ch.state().out.clear();
    co_return core::result<void>{};
}

TEST(SshChannelWake, TrafficOnOneChannelLeavesAnotherChannelsWaiterAsleep) {
    auto sshd = sshd_fixture::start();
    ASSERT_TRUE(sshd) << sshd.error().message;
    asio::io_context io;
    int quiet_wakes = 0;       // returns of the waiter on the quiet channel
    int session_wakes = 0;     // returns of a plain session wait()
    bool quiet_heard = false;  // the quiet channel's own echo arrived
    std::optional<core::error> failed;

    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            const auto deadline = ssh::clock_type::now() + 20s;
            auto s = co_await ssh::session::connect(io.get_executor(), target_of(*sshd));
            if (!s) {
                failed = s.error();
                co_return;
            }
            auto busy = co_await open_cat(*s, deadline);
            auto quiet = co_await open_cat(*s, deadline);
            if (!busy || !quiet) {
                failed = !busy ? busy.error() : quiet.error();
                co_return;
            }
            bool done = false;
            int running = 2;  // the two waiters below; they use this frame's session and channels
            // A waiter on the quiet channel, as a forward pump waits.
            core::spawn(
                io.get_executor(),
                [&]() -> asio::awaitable<void> {
                    while (!done) {
                        quiet->drain();
                        if (!quiet->state().out.empty()) {
                            quiet_heard = true;
                            break;
                        }
                        if (auto w = co_await quiet->wait_readable(deadline); !w) break;
                        ++quiet_wakes;
                    }
                    --running;
                },
                "quiet channel waiter");
            // A plain session waiter: woken by every event, as before.
            core::spawn(
                io.get_executor(),
                [&]() -> asio::awaitable<void> {
                    while (!done)
                        if (auto w = co_await (*s)->wait(deadline); w)
                            ++session_wakes;
                        else
                            break;
                    --running;
                },
                "session waiter");
            for (int i = 0; i < 50; ++i)
                if (auto r = co_await echo(*busy, "message " + std::to_string(i) + "\n", deadline);
                    !r) {
                    failed = r.error();
                    co_return;
                }
            EXPECT_EQ(quiet_wakes, 0) << "50 echoes on another channel woke the quiet one";
            EXPECT_GE(session_wakes, 50) << "a plain wait() must still see every event";
            // Now the quiet channel's own traffic wakes it.
            if (auto n = quiet->write_some("hello\n"); !n || *n != 6) {
                failed = core::error{core::errc::protocol_error, "write to the quiet channel"};
                co_return;
            }
            (*s)->notify();
            asio::steady_timer t(io);
            for (int i = 0; i < 200 && !quiet_heard; ++i) {
                t.expires_after(10ms);
                co_await t.async_wait(asio::use_awaitable);
            }
            done = true;
            (*s)->disconnect();  // wakes both waiters: they see `done` or the closed session
            for (int i = 0; i < 200 && running > 0; ++i) {
                t.expires_after(10ms);
                co_await t.async_wait(asio::use_awaitable);
            }
        },
        [](std::exception_ptr e) {
            if (e) std::rethrow_exception(e);
        });
    io.run_for(30s);
    ASSERT_FALSE(failed) << failed->message << "\n" << sshd->log();
    EXPECT_TRUE(quiet_heard) << "the quiet channel's own echo did not wake its waiter";
    EXPECT_LE(quiet_wakes, 1);
}

}  // namespace
}  // namespace tunnel::test
