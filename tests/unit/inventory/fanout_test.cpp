#include "inventory/fanout.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

#include "core/spawn.hpp"

namespace tunnel::inventory {
namespace {

using namespace std::chrono_literals;

struct probe {
    std::size_t running = 0, peak = 0;
    std::vector<std::size_t> started;
};

asio::awaitable<void> slow_item(probe* p, std::size_t i) {
    p->started.push_back(i);
    p->peak = std::max(p->peak, ++p->running);
    asio::steady_timer t(co_await asio::this_coro::executor,
                         std::chrono::milliseconds(i == 0 ? 50 : 2));
    co_await t.async_wait(asio::use_awaitable);
    --p->running;
}

asio::awaitable<void> failing_item(std::size_t i) {
    if (i == 3) throw std::runtime_error("item 3 failed");
    co_return;
}

TEST(Fanout, ForksBoundConcurrencyAndEveryItemRuns) {
    asio::io_context io;
    probe p;
    core::spawn(io, for_each_host(10, 3, [&p](std::size_t i) { return slow_item(&p, i); }),
                "fan-out of 10");
    io.run();
    EXPECT_EQ(p.peak, 3u);
    EXPECT_EQ(p.started.size(), 10u);
    EXPECT_EQ(p.running, 0u);
    // Item 0 is slow: the other slots go on through the rest meanwhile.
    EXPECT_EQ(p.started.front(), 0u);
    EXPECT_EQ(p.started.back(), 9u);
}

TEST(Fanout, MoreForksThanItemsAndZeroItems) {
    asio::io_context io;
    probe p;
    core::spawn(io, for_each_host(2, 50, [&p](std::size_t i) { return slow_item(&p, i); }),
                "fan-out of 2");
    core::spawn(io, for_each_host(0, 50, [&p](std::size_t i) { return slow_item(&p, i); }),
                "fan-out of 0");
    io.run();
    EXPECT_EQ(p.started.size(), 2u);
}

TEST(Fanout, AnExceptionIsRethrownAfterEveryItemFinished) {
    asio::io_context io;
    std::string caught;
    asio::co_spawn(io, for_each_host(6, 2, [](std::size_t i) { return failing_item(i); }),
                   [&](std::exception_ptr e) {
                       try {
                           if (e) std::rethrow_exception(e);
                       } catch (const std::exception& ex) {
                           caught = ex.what();
                       }
                   });
    io.run();
    EXPECT_EQ(caught, "item 3 failed");
}

TEST(Fanout, LineSplitterKeepsPartialLines) {
    line_splitter s;
    std::vector<std::string> lines;
    auto emit = [&](std::string_view l) { lines.emplace_back(l); };
    s.feed("a\nb", emit);
    s.feed("c\n\nd", emit);
    s.flush(emit);
    EXPECT_EQ(lines, (std::vector<std::string>{"a", "bc", "", "d"}));
}

TEST(Fanout, Summary) {
    std::vector<host_result> r(4);
    r[0].status = host_status::ok;
    r[1].status = host_status::failed;
    r[2].status = host_status::unreachable;
    r[3].status = host_status::ok;
    auto s = summarize(r, 10ms);
    EXPECT_EQ(s.ok, 2u);
    EXPECT_EQ(s.failed, 1u);
    EXPECT_EQ(s.unreachable, 1u);
    EXPECT_EQ(s.total(), 4u);
    EXPECT_TRUE(is_unreachable({core::errc::disconnected, ""}));
    EXPECT_FALSE(is_unreachable({core::errc::permission_denied, ""}));
}

}  // namespace
}  // namespace tunnel::inventory
