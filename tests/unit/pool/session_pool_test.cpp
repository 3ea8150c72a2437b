// Pool bookkeeping with an injected connector and clock: no sockets.
#include "pool/session_pool.hpp"

#include <gtest/gtest.h>

#include "core/spawn.hpp"

namespace tunnel::pool {
namespace {

using namespace std::chrono_literals;

struct pool_harness {
    asio::io_context io;
    core::manual_clock clock;
    int connects = 0;
    bool alive = true;
    session_pool pool;

    explicit pool_harness(pool_limits limits)
        : pool(
              io.get_executor(), limits, clock,
              [this](asio::any_io_executor, ssh::connect_options)
                  -> asio::awaitable<core::result<std::shared_ptr<ssh::session>>> {
                  ++connects;
                  co_return std::shared_ptr<ssh::session>{};  // bookkeeping only: never
                                                              // dereferenced
              },
              [this](const std::shared_ptr<ssh::session>&) { return alive; }) {}

    // Acquires `n` leases and keeps them until `hold` is cleared.
    std::vector<session_pool::lease> acquire(const ssh::connect_options& o, int n) {
        std::vector<session_pool::lease> out;
        core::spawn(
            io,
            [&]() -> asio::awaitable<void> {
                for (int i = 0; i < n; ++i) {
                    auto l = co_await pool.acquire(o);
                    if (l) out.push_back(std::move(*l));
                }
            },
            "acquire leases");
        io.run();
        io.restart();
        return out;
    }
};

ssh::connect_options dest(std::string host) {
    ssh::connect_options o;
    o.host = std::move(host);
    o.user = "root";
    o.connect_timeout = 50ms;
    return o;
}

TEST(SessionPool, ChannelsShareOneSessionUpToTheLimit) {
    pool_harness h({.max_sessions_per_destination = 4, .max_channels_per_session = 3});
    auto leases = h.acquire(dest("a"), 7);
    EXPECT_EQ(leases.size(), 7u);
    EXPECT_EQ(h.connects, 3);  // 3 + 3 + 1
    EXPECT_EQ(h.pool.session_count(), 3u);
}

TEST(SessionPool, ReleasedSlotsAreReused) {
    pool_harness h({});
    { auto l = h.acquire(dest("a"), 1); }
    auto again = h.acquire(dest("a"), 1);
    ASSERT_EQ(again.size(), 1u);
    EXPECT_TRUE(again.front().reused());
    EXPECT_EQ(h.connects, 1);
}

TEST(SessionPool, DestinationsAreKeyedSeparately) {
    pool_harness h({});
    auto a = h.acquire(dest("a"), 1);
    auto b = h.acquire(dest("b"), 1);
    EXPECT_EQ(h.connects, 2);
    EXPECT_EQ(h.pool.session_count("root@a:22"), 1u);
}

TEST(SessionPool, PerDestinationLimitMakesAcquireWaitThenFail) {
    pool_harness h({.max_sessions_per_destination = 1, .max_channels_per_session = 1});
    auto first = h.acquire(dest("a"), 1);
    auto second = h.acquire(dest("a"), 1);  // no slot within connect_timeout (50 ms)
    EXPECT_EQ(first.size(), 1u);
    EXPECT_TRUE(second.empty());
    EXPECT_EQ(h.connects, 1);
}

TEST(SessionPool, IdleSessionsExpire) {
    pool_harness h({.idle_timeout = 10s, .max_lifetime = 1h});
    { auto l = h.acquire(dest("a"), 1); }
    h.clock.advance(9s);
    h.pool.evict_expired();
    EXPECT_EQ(h.pool.session_count(), 1u);
    h.clock.advance(2s);
    h.pool.evict_expired();
    EXPECT_EQ(h.pool.session_count(), 0u);
}

TEST(SessionPool, OldSessionsAreNotHandedOutAgain) {
    pool_harness h({.idle_timeout = 1h, .max_lifetime = 60s});
    auto busy = h.acquire(dest("a"), 1);
    h.clock.advance(61s);
    auto fresh = h.acquire(dest("a"), 1);
    ASSERT_EQ(fresh.size(), 1u);
    EXPECT_FALSE(fresh.front().reused());
    EXPECT_EQ(h.connects, 2);
    busy.clear();
    h.pool.evict_expired();  // the old one goes once its channel is back
    EXPECT_EQ(h.pool.session_count(), 1u);
}

TEST(SessionPool, DeadIdleSessionIsReplaced) {
    pool_harness h({});
    { auto l = h.acquire(dest("a"), 1); }
    h.alive = false;
    auto l = h.acquire(dest("a"), 1);
    ASSERT_EQ(l.size(), 1u);
    EXPECT_FALSE(l.front().reused());
    EXPECT_EQ(h.connects, 2);
}

TEST(SessionPool, MarkFullCapsChannelsForThatSession) {
    pool_harness h({.max_sessions_per_destination = 4, .max_channels_per_session = 10});
    auto leases = h.acquire(dest("a"), 3);
    leases.back().mark_full();  // the server refused the third channel: MaxSessions is 2
    leases.pop_back();
    auto more = h.acquire(dest("a"), 1);
    ASSERT_EQ(more.size(), 1u);
    EXPECT_FALSE(more.front().reused());
    EXPECT_EQ(h.connects, 2);
}

TEST(SessionPool, CloseDropsIdleSessionsAndRetiresBusyOnes) {
    pool_harness h({.max_sessions_per_destination = 1, .max_channels_per_session = 10});
    auto idle = h.acquire(dest("a"), 1);
    idle.clear();
    auto busy = h.acquire(dest("b"), 1);
    ASSERT_EQ(h.pool.session_count(), 2u);
    h.pool.close();
    EXPECT_EQ(h.pool.session_count(dest("a").destination()), 0u);  // closed now
    // Still in use: kept until its lease returns.
    EXPECT_EQ(h.pool.session_count(dest("b").destination()), 1u);
    busy.clear();
    auto again = h.acquire(dest("b"), 1);  // the retired session is not handed out again
    ASSERT_EQ(again.size(), 1u);
    EXPECT_FALSE(again.front().reused());
    EXPECT_EQ(h.connects, 3);
}

TEST(SessionPool, ValidateLimits) {
    EXPECT_TRUE(validate(pool_limits{}));
    EXPECT_FALSE(validate(pool_limits{.max_sessions_per_destination = 0}));
    EXPECT_FALSE(validate(pool_limits{.max_channels_per_session = 0}));
    EXPECT_FALSE(validate(pool_limits{.max_sessions_per_destination = 8, .max_sessions_total = 4}));
}

}  // namespace
}  // namespace tunnel::pool
