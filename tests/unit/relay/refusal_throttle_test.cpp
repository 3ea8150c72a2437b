#include "relay/refusal_throttle.hpp"

#include <gtest/gtest.h>

namespace tunnel::relay {
namespace {

using namespace std::chrono_literals;

TEST(RefusalThrottle, ThrottlesASourceAfterNRefusalsUntilTheWindowEnds) {
    core::manual_clock clock;
    refusal_throttle t({3, 60s}, 100, clock);
    for (int i = 0; i < 3; ++i) {
        EXPECT_FALSE(t.check("a").throttled);
        EXPECT_EQ(t.record_refusal("a"), i == 2);  // the third starts throttling
    }
    auto v = t.check("a");
    EXPECT_TRUE(v.throttled);
    EXPECT_EQ(v.retry_after, 60s);
    EXPECT_FALSE(t.check("b").throttled);  // per source
    clock.advance(30s);
    v = t.check("a");
    EXPECT_TRUE(v.throttled);
    EXPECT_EQ(v.retry_after_seconds(), 30);
    EXPECT_TRUE(t.take_ended().empty());  // the window goes on

    clock.advance(30s);
    EXPECT_FALSE(t.check("a").throttled);
    auto ended = t.take_ended();
    ASSERT_EQ(ended.size(), 1u);
    EXPECT_EQ(ended[0].source, "a");
    EXPECT_EQ(ended[0].refusals, 3u);
    EXPECT_EQ(ended[0].suppressed, 2u);
    EXPECT_TRUE(t.take_ended().empty());
    EXPECT_EQ(t.size(), 0u);
}

TEST(RefusalThrottle, AWindowWithoutThrottlingLeavesNoSummary) {
    core::manual_clock clock;
    refusal_throttle t({3, 10s}, 100, clock);
    t.record_refusal("a");
    t.record_refusal("a");
    clock.advance(10s);
    EXPECT_TRUE(t.take_ended().empty());
    // A new window starts from zero.
    t.record_refusal("a");
    t.record_refusal("a");
    EXPECT_FALSE(t.check("a").throttled);
}

TEST(RefusalThrottle, StaysBoundedAndKeepsTheSummariesOfWhatItDrops) {
    core::manual_clock clock;
    refusal_throttle t({1, 60s}, 3, clock);
    for (const char* s : {"a", "b", "c"}) {
        t.record_refusal(s);
        EXPECT_TRUE(t.check(s).throttled);
        clock.advance(1s);
    }
    t.record_refusal("d");  // "a", the oldest, makes room
    EXPECT_EQ(t.size(), 3u);
    EXPECT_FALSE(t.check("a").throttled);
    auto all = t.take_all();
    ASSERT_EQ(all.size(), 3u);  // a (dropped), b, c; d was never throttled
    EXPECT_EQ(t.size(), 0u);
}

}  // namespace
}  // namespace tunnel::relay
