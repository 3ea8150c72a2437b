#include "core/backoff.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <optional>
#include <vector>

namespace tunnel::core {
namespace {

using namespace std::chrono_literals;

random_source constant(double value) {
    return [value] { return value; };
}

random_source sequence(std::vector<double> values) {
    auto index = std::make_shared<std::size_t>(0);
    return [values = std::move(values), index] { return values[(*index)++ % values.size()]; };
}

const double almost_one = std::nextafter(1.0, 0.0);

TEST(Backoff, CeilingDoublesUntilCap) {
    const backoff_policy policy{100ms, 1s, 0};
    EXPECT_EQ(backoff_ceiling(policy, 0), 100ms);
    EXPECT_EQ(backoff_ceiling(policy, 1), 200ms);
    EXPECT_EQ(backoff_ceiling(policy, 2), 400ms);
    EXPECT_EQ(backoff_ceiling(policy, 3), 800ms);
    EXPECT_EQ(backoff_ceiling(policy, 4), 1s);
    EXPECT_EQ(backoff_ceiling(policy, 5), 1s);
}

TEST(Backoff, CeilingIsOverflowSafeForHugeAttempts) {
    const backoff_policy policy{1ms, 30s, 0};
    for (unsigned attempt :
         {30u, 62u, 63u, 64u, 65u, 1000u, std::numeric_limits<unsigned>::max()}) {
        EXPECT_EQ(backoff_ceiling(policy, attempt), 30s) << attempt;
    }
    const backoff_policy huge{std::chrono::milliseconds::max() / 2,
                              std::chrono::milliseconds::max(), 0};
    EXPECT_EQ(backoff_ceiling(huge, 1), std::chrono::milliseconds::max() - 1ms);
    EXPECT_EQ(backoff_ceiling(huge, 2), std::chrono::milliseconds::max());
}

TEST(Backoff, CeilingIsZeroForNonPositiveSettings) {
    EXPECT_EQ(backoff_ceiling({0ms, 1s, 0}, 3), 0ms);
    EXPECT_EQ(backoff_ceiling({-5ms, 1s, 0}, 3), 0ms);
    EXPECT_EQ(backoff_ceiling({5ms, 0ms, 0}, 3), 0ms);
}

TEST(Backoff, BaseAboveCapIsCapped) {
    EXPECT_EQ(backoff_ceiling({5s, 1s, 0}, 0), 1s);
}

TEST(Backoff, DelayIsFullJitterOverTheCeiling) {
    const backoff_policy policy{100ms, 10s, 0};
    backoff low(policy, constant(0.0));
    backoff mid(policy, constant(0.5));
    backoff high(policy, constant(almost_one));
    for (unsigned attempt = 0; attempt < 10; ++attempt) {
        const auto ceiling = backoff_ceiling(policy, attempt);
        EXPECT_EQ(low.delay(attempt), 0ms);
        EXPECT_EQ(high.delay(attempt), ceiling);
        const auto middle = mid.delay(attempt);
        EXPECT_GE(middle, ceiling / 2 - 1ms);
        EXPECT_LE(middle, ceiling / 2 + 1ms);
    }
}

TEST(Backoff, OutOfRangeRandomnessIsClamped) {
    const backoff_policy policy{100ms, 10s, 0};
    EXPECT_EQ(backoff(policy, constant(-3.0)).delay(2), 0ms);
    EXPECT_EQ(backoff(policy, constant(1.0)).delay(2), 400ms);
    EXPECT_EQ(backoff(policy, constant(7.0)).delay(2), 400ms);
    EXPECT_EQ(backoff(policy, constant(std::nan(""))).delay(2), 0ms);
}

TEST(Backoff, NextWalksTheAttemptsAndResets) {
    backoff retry({100ms, 10s, 0}, constant(almost_one));
    EXPECT_EQ(retry.next(), 100ms);
    EXPECT_EQ(retry.next(), 200ms);
    EXPECT_EQ(retry.next(), 400ms);
    EXPECT_EQ(retry.failures(), 3u);
    retry.reset();
    EXPECT_EQ(retry.failures(), 0u);
    EXPECT_EQ(retry.next(), 100ms);
}

TEST(Backoff, UnlimitedAttemptsNeverGiveUpAndStayAtCap) {
    backoff retry({1ms, 2s, 0}, constant(almost_one));
    std::optional<std::chrono::milliseconds> last;
    for (int i = 0; i < 200; ++i) last = retry.next();
    EXPECT_EQ(last, 2s);
}

TEST(Backoff, MaxAttemptsCountsTheFirstAttempt) {
    backoff retry({100ms, 10s, 3}, constant(0.0));
    EXPECT_TRUE(retry.next().has_value());   // before attempt 2
    EXPECT_TRUE(retry.next().has_value());   // before attempt 3
    EXPECT_FALSE(retry.next().has_value());  // 3 attempts made: give up
    EXPECT_FALSE(retry.next().has_value());
    retry.reset();
    EXPECT_TRUE(retry.next().has_value());

    backoff once({100ms, 10s, 1}, constant(0.0));
    EXPECT_FALSE(once.next().has_value());
}

TEST(Backoff, UsesTheInjectedSourceInOrder) {
    backoff retry({1000ms, 100s, 0}, sequence({0.25, 0.75}));
    EXPECT_EQ(retry.next(), 250ms);   // floor(0.25 * 1001)
    EXPECT_EQ(retry.next(), 1500ms);  // floor(0.75 * 2001)
}

TEST(Backoff, DefaultSourceStaysWithinTheCeilingAndVaries) {
    backoff retry({100ms, 10s, 0});
    std::vector<std::chrono::milliseconds> seen;
    for (int i = 0; i < 200; ++i) {
        const auto d = retry.delay(5);  // ceiling 3.2s
        EXPECT_GE(d, 0ms);
        EXPECT_LE(d, 3200ms);
        seen.push_back(d);
    }
    std::sort(seen.begin(), seen.end());
    EXPECT_GT(std::unique(seen.begin(), seen.end()) - seen.begin(), 50);
}

TEST(Backoff, ValidateNamesTheField) {
    EXPECT_TRUE(validate({100ms, 1s, 0}).has_value());
    auto zero_base = validate({0ms, 1s, 0});
    ASSERT_FALSE(zero_base.has_value());
    EXPECT_EQ(zero_base.error().code, errc::invalid_argument);
    EXPECT_NE(zero_base.error().message.find("base"), std::string::npos);
    auto small_cap = validate({2s, 1s, 0});
    ASSERT_FALSE(small_cap.has_value());
    EXPECT_NE(small_cap.error().message.find("cap"), std::string::npos);
}

}  // namespace
}  // namespace tunnel::core
