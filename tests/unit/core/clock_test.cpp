#include "core/clock.hpp"

#include <gtest/gtest.h>

namespace tunnel::core {
namespace {

using namespace std::chrono_literals;

TEST(Clock, SystemClockSourceIsMonotonicAndShared) {
    const clock& a = system_clock_source();
    const clock& b = system_clock_source();
    EXPECT_EQ(&a, &b);
    const auto first = a.now();
    const auto second = a.now();
    EXPECT_LE(first, second);
}

TEST(Clock, ManualClockMovesOnlyWhenTold) {
    const clock::time_point start{};
    manual_clock clock(start + 10s);
    EXPECT_EQ(clock.now(), start + 10s);
    EXPECT_EQ(clock.now(), start + 10s);
    clock.advance(1500ms);
    EXPECT_EQ(clock.now(), start + 11500ms);
}

TEST(Clock, ManualClockNeverGoesBackwards) {
    manual_clock clock;
    const auto before = clock.now();
    clock.advance(-5s);
    EXPECT_EQ(clock.now(), before);
    clock.set(before - 1s);
    EXPECT_EQ(clock.now(), before);
    clock.set(before + 2s);
    EXPECT_EQ(clock.now(), before + 2s);
}

TEST(Clock, ManualClockWorksThroughTheInterface) {
    manual_clock manual;
    const clock& injected = manual;
    const auto before = injected.now();
    manual.advance(1h);
    EXPECT_EQ(injected.now() - before, 1h);
}

}  // namespace
}  // namespace tunnel::core
