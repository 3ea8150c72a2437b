#include "relay/shared_rate_limiter.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <iostream>
#include <memory>
#include <string>

namespace tunnel::relay {
namespace {

using namespace std::chrono_literals;
using batch_grant = shared_rate_limiter::grant;

// Fetches held until the test answers them.
struct pending_fetches {
    struct fetch {
        std::string key;
        long long want = 0;
        shared_rate_limiter::fetch_done done;
    };
    std::deque<fetch> queue;

    shared_rate_limiter::fetcher fetcher() {
        return [this](const std::string& key, bucket_settings, long long want,
                      shared_rate_limiter::fetch_done done) {
            queue.push_back({key, want, std::move(done)});
        };
    }
    // Answers the oldest fetch.
    void answer(std::optional<batch_grant> g) {
        ASSERT_FALSE(queue.empty());
        auto f = std::move(queue.front());
        queue.pop_front();
        f.done(g);
    }
};

// A limiter on a manual clock whose fetches wait for the test; `up` is
// whether Redis is connected.
struct under_test {
    explicit under_test(std::size_t max_keys = 10000)
        : limiter(shared_rate_limiter::create(
              fetches.fetcher(), [this] { return up; }, fallback, clock, max_keys)) {}
    core::manual_clock clock;
    rate_limiter fallback{100, clock};
    pending_fetches fetches;
    bool up = true;
    std::shared_ptr<shared_rate_limiter> limiter;
};

// The shared bucket as cluster::shared_buckets' take_up_to script keeps it
// in Redis: refilled at `rate` up to `burst`, whole tokens granted.
struct model_bucket {
    const core::clock& clock;
    double rate;
    double burst;
    double tokens = burst;
    core::clock::time_point ts = clock.now();
    long long granted = 0;

    batch_grant take_up_to(long long max) {
        const auto now = clock.now();
        tokens = std::min(burst, tokens + std::chrono::duration<double>(now - ts).count() * rate);
        ts = now;
        const long long g = std::min(static_cast<long long>(std::floor(tokens)), max);
        tokens -= static_cast<double>(g);
        granted += g;
        const auto wait = g == 0 ? std::chrono::milliseconds(static_cast<long long>(
                                       std::ceil((1 - tokens) * 1000 / rate)))
                                 : 0ms;
        return {g, wait};
    }
};

TEST(SharedRateLimiter, BatchIsATenthOfASecondAtMostAQuarterOfTheBurst) {
    EXPECT_EQ(shared_rate_limiter::batch_for({20, 20}), 2);
    EXPECT_EQ(shared_rate_limiter::batch_for({1000, 2000}), 100);
    EXPECT_EQ(shared_rate_limiter::batch_for({1000, 40}), 10);
    EXPECT_EQ(shared_rate_limiter::batch_for({1, 2}), 1);
    EXPECT_EQ(shared_rate_limiter::batch_for({1e6, 1e6}), 1000);
}

TEST(SharedRateLimiter, ANewKeyIsAdmittedOnCreditAndTheDebtIsPaidFirst) {
    under_test t;
    const bucket_settings s{20, 8};  // batch 2, credit 2 (a quarter of the burst is 2 too)

    // Admitted at once (no Redis round trip), and a fetch goes out.
    EXPECT_TRUE(t.limiter->acquire("tenant/acme", s).allowed);
    ASSERT_EQ(t.fetches.queue.size(), 1u);
    EXPECT_EQ(t.fetches.queue.front().key, "tenant/acme");
    EXPECT_EQ(t.fetches.queue.front().want, 3);  // the batch and the debt of 1
    // On credit up to one batch while the fetch is out; then refused.
    EXPECT_TRUE(t.limiter->acquire("tenant/acme", s).allowed);
    EXPECT_DOUBLE_EQ(t.limiter->balance("tenant/acme"), -2);
    auto refused = t.limiter->acquire("tenant/acme", s);
    EXPECT_FALSE(refused.allowed);
    EXPECT_EQ(refused.retry_after, 150ms);  // 3 tokens at 20/s
    EXPECT_EQ(refused.retry_after_seconds(), 1);
    EXPECT_EQ(t.fetches.queue.size(), 1u) << "one fetch at a time per key";

    // The grant pays the debt first.
    t.fetches.answer(batch_grant{3, 0ms});
    EXPECT_DOUBLE_EQ(t.limiter->balance("tenant/acme"), 1);
    EXPECT_TRUE(t.limiter->acquire("tenant/acme", s).allowed);
    // Below half a batch: the next fetch goes out.
    ASSERT_EQ(t.fetches.queue.size(), 1u);
    EXPECT_EQ(t.fetches.queue.front().want, 2);
    EXPECT_EQ(t.limiter->fetches(), 2u);
}

// A burst (requests let go from a queue) is not refused while the first
// fetch is out: the credit is a quarter of the burst when that is more than
// a batch.
TEST(SharedRateLimiter, ABurstRidesOnAQuarterOfTheBurstOfCredit) {
    under_test t;
    const bucket_settings s{20, 40};  // batch 2, credit 10
    for (int i = 0; i < 10; ++i) EXPECT_TRUE(t.limiter->acquire("route/acme/web", s).allowed) << i;
    EXPECT_FALSE(t.limiter->acquire("route/acme/web", s).allowed);
    EXPECT_EQ(t.fetches.queue.size(), 1u) << "one fetch at a time per key";
}

TEST(SharedRateLimiter, ADryBucketStopsTheCreditUntilATokenIsBack) {
    under_test t;
    const bucket_settings s{20, 20};
    EXPECT_TRUE(t.limiter->acquire("k", s).allowed);
    t.fetches.answer(batch_grant{0, 400ms});  // another relay took everything
    auto refused = t.limiter->acquire("k", s);
    EXPECT_FALSE(refused.allowed);
    EXPECT_EQ(refused.retry_after, 400ms);
    EXPECT_TRUE(t.fetches.queue.empty()) << "no fetch before the bucket has a token again";
    t.clock.advance(399ms);
    EXPECT_FALSE(t.limiter->acquire("k", s).allowed);
    EXPECT_TRUE(t.fetches.queue.empty());
    t.clock.advance(1ms);
    // A token is back: credit again, and a fetch.
    EXPECT_TRUE(t.limiter->acquire("k", s).allowed);
    ASSERT_EQ(t.fetches.queue.size(), 1u);
    EXPECT_EQ(t.fetches.queue.front().want, 4);  // batch 2 + debt 2
    // A short grant (1 of 4) pays part of the debt; dry for one token's time.
    t.fetches.answer(batch_grant{1, 0ms});
    EXPECT_DOUBLE_EQ(t.limiter->balance("k"), -1);
    EXPECT_FALSE(t.limiter->acquire("k", s).allowed);
    t.clock.advance(50ms);
    EXPECT_TRUE(t.limiter->acquire("k", s).allowed);
}

TEST(SharedRateLimiter, AFailedFetchIsRetriedLaterAndKeepsTheCredit) {
    under_test t;
    const bucket_settings s{100, 100};  // batch 10
    EXPECT_TRUE(t.limiter->acquire("k", s).allowed);
    t.fetches.answer(std::nullopt);
    EXPECT_TRUE(t.limiter->acquire("k", s).allowed);
    EXPECT_TRUE(t.fetches.queue.empty()) << "not again before fetch_retry";
    t.clock.advance(shared_rate_limiter::fetch_retry);
    EXPECT_TRUE(t.limiter->acquire("k", s).allowed);
    EXPECT_EQ(t.fetches.queue.size(), 1u);
}

TEST(SharedRateLimiter, WithRedisAwayTheFallbackDecides) {
    under_test t;
    t.up = false;
    const bucket_settings s{1, 3};
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(t.limiter->acquire("k", s).allowed) << i;
    auto refused = t.limiter->acquire("k", s);
    EXPECT_FALSE(refused.allowed);
    EXPECT_EQ(refused.retry_after, 1000ms);
    EXPECT_TRUE(t.fetches.queue.empty());
    EXPECT_EQ(t.fallback.size(), 1u);
    t.up = true;
    EXPECT_TRUE(t.limiter->acquire("k", s).allowed) << "shared again: credit";
    EXPECT_EQ(t.fetches.queue.size(), 1u);
}

// Two relays on one modelled Redis bucket, each asked every millisecond for
// 10 s (fetches answered at once): together they admit the bucket's budget
// (burst + rate x t) plus at most one batch each, never twice the budget.
TEST(SharedRateLimiter, TwoRelaysTogetherAdmitOneBudgetPlusTheBatchSlack) {
    for (const bucket_settings s : {bucket_settings{20, 20}, bucket_settings{500, 1000}}) {
        core::manual_clock clock;
        model_bucket redis{clock, s.rate, s.burst};
        auto fetcher = [&](const std::string&, bucket_settings, long long want,
                           shared_rate_limiter::fetch_done done) { done(redis.take_up_to(want)); };
        rate_limiter fallback_a(100, clock), fallback_b(100, clock);
        auto a = shared_rate_limiter::create(
            fetcher, [] { return true; }, fallback_a, clock);
        auto b = shared_rate_limiter::create(
            fetcher, [] { return true; }, fallback_b, clock);
        long long admitted = 0;
        long long refused_without_wait = 0;
        for (int ms = 0; ms < 10'000; ++ms) {
            for (auto* relay : {a.get(), b.get()}) {
                const auto d = relay->acquire("tenant/acme", s);
                if (d.allowed) ++admitted;
                if (!d.allowed && d.retry_after <= 0ms) ++refused_without_wait;
            }
            clock.advance(1ms);
        }
        const double budget = s.burst + s.rate * 10;
        const long long slack =
            2 * std::max(shared_rate_limiter::batch_for(s), static_cast<long long>(s.burst / 4));
        std::cout << "[ measure  ] " << s.rate << "/s burst " << s.burst << ": " << admitted
                  << " admitted by two relays in 10 s (budget " << budget << ", slack " << slack
                  << "), " << a->fetches() + b->fetches() << " fetches for 20000 requests\n";
        EXPECT_LE(admitted, static_cast<long long>(budget) + slack) << s.rate;
        EXPECT_GE(admitted, static_cast<long long>(budget * 0.97)) << s.rate;
        EXPECT_LE(redis.granted, static_cast<long long>(budget)) << s.rate;
        EXPECT_EQ(refused_without_wait, 0);
        // Far fewer round trips than requests.
        EXPECT_LT(static_cast<double>(a->fetches() + b->fetches()), 20'000 * 0.3) << s.rate;
    }
}

TEST(SharedRateLimiter, KeysAreBounded) {
    under_test t(4);
    for (int i = 0; i < 4; ++i) {
        (void)t.limiter->acquire("k" + std::to_string(i), {10, 10});
        t.fetches.answer(batch_grant{1, 0ms});
        t.clock.advance(1s);
    }
    (void)t.limiter->acquire("k4", {10, 10});
    EXPECT_EQ(t.limiter->size(), 4u);
    EXPECT_DOUBLE_EQ(t.limiter->balance("k0"), 0) << "the least recently used went";
}

}  // namespace
}  // namespace tunnel::relay
