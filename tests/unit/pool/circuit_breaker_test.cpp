#include "pool/circuit_breaker.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace tunnel::pool {
namespace {

using namespace std::chrono_literals;

class Breaker : public ::testing::Test {
  protected:
    core::manual_clock clock_;
    circuit_breaker breaker_{{3, 10s}, clock_};

    void fail_times(unsigned n) {
        for (unsigned i = 0; i < n; ++i) {
            ASSERT_TRUE(breaker_.allow());
            breaker_.on_failure();
        }
    }
};

TEST_F(Breaker, StartsClosed) {
    EXPECT_EQ(breaker_.state(), breaker_state::closed);
    EXPECT_TRUE(breaker_.allow());
    EXPECT_EQ(breaker_.retry_after(), 0ms);
    EXPECT_EQ(breaker_.consecutive_failures(), 0u);
}

TEST_F(Breaker, OpensAfterThresholdConsecutiveFailures) {
    fail_times(2);
    EXPECT_EQ(breaker_.state(), breaker_state::closed);
    fail_times(1);
    EXPECT_EQ(breaker_.state(), breaker_state::open);
    EXPECT_EQ(breaker_.consecutive_failures(), 3u);
    EXPECT_FALSE(breaker_.allow());
    EXPECT_EQ(breaker_.retry_after(), 10s);
}

TEST_F(Breaker, SuccessResetsTheCount) {
    fail_times(2);
    ASSERT_TRUE(breaker_.allow());
    breaker_.on_success();
    fail_times(2);
    EXPECT_EQ(breaker_.state(), breaker_state::closed);
    EXPECT_EQ(breaker_.consecutive_failures(), 2u);
}

TEST_F(Breaker, AllowsExactlyOneProbeAfterCoolDown) {
    fail_times(3);
    clock_.advance(9999ms);
    EXPECT_FALSE(breaker_.allow());
    EXPECT_EQ(breaker_.retry_after(), 1ms);
    clock_.advance(1ms);
    EXPECT_EQ(breaker_.state(), breaker_state::open);  // until someone asks
    EXPECT_EQ(breaker_.retry_after(), 0ms);
    EXPECT_TRUE(breaker_.allow());
    EXPECT_EQ(breaker_.state(), breaker_state::half_open);
    EXPECT_FALSE(breaker_.allow());
    EXPECT_FALSE(breaker_.allow());
}

TEST_F(Breaker, ProbeSuccessCloses) {
    fail_times(3);
    clock_.advance(10s);
    ASSERT_TRUE(breaker_.allow());
    breaker_.on_success();
    EXPECT_EQ(breaker_.state(), breaker_state::closed);
    EXPECT_EQ(breaker_.consecutive_failures(), 0u);
    EXPECT_TRUE(breaker_.allow());
    EXPECT_TRUE(breaker_.allow());
}

TEST_F(Breaker, ProbeFailureReopensForAnotherCoolDown) {
    fail_times(3);
    clock_.advance(15s);
    ASSERT_TRUE(breaker_.allow());
    clock_.advance(2s);  // the probe takes a while to fail
    breaker_.on_failure();
    EXPECT_EQ(breaker_.state(), breaker_state::open);
    EXPECT_EQ(breaker_.consecutive_failures(), 4u);
    EXPECT_EQ(breaker_.retry_after(), 10s);  // counted from the probe's failure
    clock_.advance(9s);
    EXPECT_FALSE(breaker_.allow());
    clock_.advance(1s);
    EXPECT_TRUE(breaker_.allow());
    EXPECT_EQ(breaker_.state(), breaker_state::half_open);
}

TEST_F(Breaker, LateOutcomesWhileOpenAreIgnored) {
    // Three attempts allowed while closed; they all fail, then stragglers report.
    fail_times(3);
    breaker_.on_success();
    EXPECT_EQ(breaker_.state(), breaker_state::open);
    clock_.advance(5s);
    breaker_.on_failure();
    EXPECT_EQ(breaker_.retry_after(), 5s);  // cool-down not extended
}

TEST_F(Breaker, LostProbeIsReplacedAfterCoolDown) {
    fail_times(3);
    clock_.advance(10s);
    ASSERT_TRUE(breaker_.allow());  // this probe never reports
    clock_.advance(4s);
    EXPECT_FALSE(breaker_.allow());
    EXPECT_EQ(breaker_.retry_after(), 6s);
    clock_.advance(6s);
    EXPECT_TRUE(breaker_.allow());
    EXPECT_FALSE(breaker_.allow());
}

TEST_F(Breaker, BeginAttemptSaysWhichAttemptIsTheProbe) {
    EXPECT_EQ(breaker_.begin_attempt(), breaker_attempt::allowed);
    fail_times(3);
    EXPECT_EQ(breaker_.begin_attempt(), breaker_attempt::refused);
    clock_.advance(10s);
    EXPECT_EQ(breaker_.begin_attempt(), breaker_attempt::probe);
    EXPECT_EQ(breaker_.begin_attempt(), breaker_attempt::refused);
    breaker_.on_success();
    EXPECT_EQ(breaker_.begin_attempt(), breaker_attempt::allowed);
}

TEST_F(Breaker, ReleasedProbeLetsTheNextAttemptProbeAtOnce) {
    fail_times(3);
    clock_.advance(10s);
    ASSERT_EQ(breaker_.begin_attempt(), breaker_attempt::probe);
    EXPECT_GT(breaker_.retry_after(), 0ms);
    // The probe's caller went away: no verdict, and no waiting a cool-down
    // for the next probe either.
    breaker_.release_probe();
    EXPECT_EQ(breaker_.state(), breaker_state::half_open);
    EXPECT_EQ(breaker_.retry_after(), 0ms);
    EXPECT_EQ(breaker_.consecutive_failures(), 3u);
    EXPECT_EQ(breaker_.begin_attempt(), breaker_attempt::probe);
    EXPECT_EQ(breaker_.begin_attempt(), breaker_attempt::refused);  // one probe at a time
    breaker_.on_failure();
    EXPECT_EQ(breaker_.state(), breaker_state::open);
    EXPECT_EQ(breaker_.begin_attempt(), breaker_attempt::refused);
}

TEST_F(Breaker, ReleaseOutsideHalfOpenChangesNothing) {
    breaker_.release_probe();
    EXPECT_EQ(breaker_.state(), breaker_state::closed);
    fail_times(3);
    breaker_.release_probe();
    EXPECT_EQ(breaker_.state(), breaker_state::open);
    EXPECT_FALSE(breaker_.allow());
    EXPECT_EQ(breaker_.retry_after(), 10s);
}

TEST(BreakerSettings, ZeroThresholdNeverOpens) {
    core::manual_clock clock;
    circuit_breaker breaker({0, 10s}, clock);
    for (int i = 0; i < 100; ++i) {
        ASSERT_TRUE(breaker.allow());
        breaker.on_failure();
    }
    EXPECT_EQ(breaker.state(), breaker_state::closed);
}

TEST(BreakerState, Names) {
    EXPECT_EQ(to_string(breaker_state::closed), "closed");
    EXPECT_EQ(to_string(breaker_state::open), "open");
    EXPECT_EQ(to_string(breaker_state::half_open), "half_open");
}

TEST(BreakerRegistry, CreatesOneBreakerPerKeyOnDemand) {
    core::manual_clock clock;
    breaker_registry registry({2, 30s}, clock);
    EXPECT_EQ(registry.size(), 0u);
    circuit_breaker& a = registry.get("root@a:22");
    circuit_breaker& b = registry.get("root@b:22");
    EXPECT_NE(&a, &b);
    EXPECT_EQ(&registry.get("root@a:22"), &a);
    EXPECT_EQ(registry.size(), 2u);
    EXPECT_EQ(a.settings().failure_threshold, 2u);
    EXPECT_EQ(a.settings().cool_down, 30s);

    a.on_failure();
    a.on_failure();
    EXPECT_EQ(a.state(), breaker_state::open);
    EXPECT_EQ(b.state(), breaker_state::closed);
}

TEST(BreakerRegistry, CheckExplainsWhyAndWhen) {
    core::manual_clock clock;
    breaker_registry registry({2, 30s}, clock);
    EXPECT_TRUE(registry.check("deploy@web1:22").has_value());
    registry.get("deploy@web1:22").on_failure();
    registry.get("deploy@web1:22").on_failure();
    clock.advance(17500ms);

    auto refused = registry.check("deploy@web1:22");
    ASSERT_FALSE(refused.has_value());
    EXPECT_EQ(refused.error().code, core::errc::circuit_open);
    EXPECT_EQ(refused.error().message,
              "circuit open for deploy@web1:22 after 2 consecutive connection failures; "
              "next attempt in 12.5s");

    clock.advance(12500ms);
    EXPECT_TRUE(registry.check("deploy@web1:22").has_value());  // the probe
    auto waiting = registry.check("deploy@web1:22");
    ASSERT_FALSE(waiting.has_value());
    EXPECT_NE(waiting.error().message.find("probe"), std::string::npos);
}

TEST(BreakerRegistry, SnapshotIsSortedByKey) {
    core::manual_clock clock;
    breaker_registry registry({1, 5s}, clock);
    registry.get("z@host:22").on_failure();
    (void)registry.get("a@host:22");
    const auto snapshot = registry.snapshot();
    ASSERT_EQ(snapshot.size(), 2u);
    EXPECT_EQ(snapshot[0].key, "a@host:22");
    EXPECT_EQ(snapshot[0].state, breaker_state::closed);
    EXPECT_EQ(snapshot[1].key, "z@host:22");
    EXPECT_EQ(snapshot[1].state, breaker_state::open);
    EXPECT_EQ(snapshot[1].consecutive_failures, 1u);
    EXPECT_EQ(snapshot[1].retry_after, 5s);
}

TEST(BreakerRegistry, ConcurrentUseFromManyThreads) {
    core::manual_clock clock;
    breaker_registry registry({1000000, 5s}, clock);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&registry, t] {
            for (int i = 0; i < 1000; ++i) {
                const std::string key = "u@h" + std::to_string((i + t) % 8) + ":22";
                if (registry.get(key).allow()) registry.get(key).on_failure();
                (void)registry.snapshot();
            }
        });
    }
    for (auto& thread : threads) thread.join();
    EXPECT_EQ(registry.size(), 8u);
    unsigned total = 0;
    for (const auto& status : registry.snapshot()) total += status.consecutive_failures;
    EXPECT_EQ(total, 4000u);
}

}  // namespace
}  // namespace tunnel::pool
