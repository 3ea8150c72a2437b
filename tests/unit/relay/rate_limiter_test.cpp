#include "relay/rate_limiter.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace tunnel::relay {
namespace {

using namespace std::chrono_literals;

TEST(RateLimiter, BurstThenRefill) {
    core::manual_clock clock;
    rate_limiter limiter(100, clock);
    bucket_settings s{2, 3};  // 2/s, burst 3
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.acquire("t", s).allowed) << i;
    auto refused = limiter.acquire("t", s);
    EXPECT_FALSE(refused.allowed);
    EXPECT_EQ(refused.retry_after, 500ms);
    EXPECT_EQ(refused.retry_after_seconds(), 1);
    clock.advance(499ms);
    EXPECT_FALSE(limiter.acquire("t", s).allowed);
    clock.advance(1ms);
    EXPECT_TRUE(limiter.acquire("t", s).allowed);
    EXPECT_FALSE(limiter.acquire("t", s).allowed);
    clock.advance(10s);  // refills to the burst, not beyond
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.acquire("t", s).allowed) << i;
    EXPECT_FALSE(limiter.acquire("t", s).allowed);
}

TEST(RateLimiter, KeysAreIndependent) {
    core::manual_clock clock;
    rate_limiter limiter(100, clock);
    bucket_settings s{1, 1};
    EXPECT_TRUE(limiter.acquire("a", s).allowed);
    EXPECT_FALSE(limiter.acquire("a", s).allowed);
    EXPECT_TRUE(limiter.acquire("b", s).allowed);
    EXPECT_EQ(limiter.size(), 2u);
}

TEST(RateLimiter, SlowRateGivesLongRetryAfter) {
    core::manual_clock clock;
    rate_limiter limiter(10, clock);
    bucket_settings s{0.1, 1};
    EXPECT_TRUE(limiter.acquire("k", s).allowed);
    auto r = limiter.acquire("k", s);
    EXPECT_FALSE(r.allowed);
    EXPECT_EQ(r.retry_after_seconds(), 10);
}

TEST(RateLimiter, SettingsChangeApplies) {
    core::manual_clock clock;
    rate_limiter limiter(10, clock);
    EXPECT_TRUE(limiter.acquire("k", {1, 10}).allowed);
    // A smaller burst caps the tokens held.
    EXPECT_TRUE(limiter.acquire("k", {1, 1}).allowed);
    EXPECT_FALSE(limiter.acquire("k", {1, 1}).allowed);
}

TEST(RateLimiter, ARaisedBurstAppliesToTheNextRequest) {
    core::manual_clock clock;
    rate_limiter limiter(10, clock);
    EXPECT_TRUE(limiter.acquire("k", {1, 1}).allowed);
    EXPECT_FALSE(limiter.acquire("k", {1, 1}).allowed);
    // A reload raises the limit to 1000/s with a burst of 1000: the next
    // requests pass at once, with no time to refill at either rate.
    for (int i = 0; i < 999; ++i) ASSERT_TRUE(limiter.acquire("k", {1000, 1000}).allowed) << i;
    EXPECT_FALSE(limiter.acquire("k", {1000, 1000}).allowed);
}

TEST(RateLimiter, BoundedKeysEvictFullBucketsFirst) {
    core::manual_clock clock;
    rate_limiter limiter(3, clock);
    bucket_settings s{1, 2};
    EXPECT_TRUE(limiter.acquire("busy", s).allowed);
    EXPECT_TRUE(limiter.acquire("busy", s).allowed);  // empty now
    EXPECT_TRUE(limiter.acquire("idle1", s).allowed);
    EXPECT_TRUE(limiter.acquire("idle2", s).allowed);
    clock.advance(1500ms);  // idle1/idle2 refilled to full; busy has 1.5
    EXPECT_TRUE(limiter.acquire("new", s).allowed);
    EXPECT_LE(limiter.size(), 3u);
    EXPECT_EQ(limiter.evictions(), 0u);
    // busy kept its state: 1.5 tokens, one request then refused.
    EXPECT_TRUE(limiter.acquire("busy", s).allowed);
    EXPECT_FALSE(limiter.acquire("busy", s).allowed);
}

TEST(RateLimiter, BoundedKeysEvictLeastRecentlyUsedWhenNoneIdle) {
    core::manual_clock clock;
    rate_limiter limiter(2, clock);
    bucket_settings s{1, 1};
    EXPECT_TRUE(limiter.acquire("a", s).allowed);
    EXPECT_TRUE(limiter.acquire("b", s).allowed);
    EXPECT_FALSE(limiter.acquire("a", s).allowed);  // a is now most recent
    EXPECT_TRUE(limiter.acquire("c", s).allowed);   // evicts b
    EXPECT_EQ(limiter.size(), 2u);
    EXPECT_EQ(limiter.evictions(), 1u);
    EXPECT_FALSE(limiter.acquire("a", s).allowed);  // a survived
    for (int i = 0; i < 1000; ++i) (void)limiter.acquire("k" + std::to_string(i), s);
    EXPECT_EQ(limiter.size(), 2u);
}

TEST(RateLimiter, ThreadSafeTotalAllowedMatchesBurst) {
    core::manual_clock clock;
    rate_limiter limiter(100, clock);
    std::atomic<int> allowed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 500; ++i)
                if (limiter.acquire("shared", {1, 100}).allowed) ++allowed;
        });
    for (auto& t : threads) t.join();
    EXPECT_EQ(allowed.load(), 100);
}

}  // namespace
}  // namespace tunnel::relay
