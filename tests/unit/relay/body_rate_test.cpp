#include "relay/body_rate.hpp"

#include <gtest/gtest.h>

namespace tunnel::relay {
namespace {

using namespace std::chrono_literals;

TEST(BodyRate, OffMeansNoBudget) {
    body_rate r(0, 10s);
    EXPECT_FALSE(r.enabled());
    r.record(1h, 0);
    EXPECT_FALSE(r.exhausted());
    EXPECT_EQ(r.budget(), body_rate::duration::max());
}

TEST(BodyRate, AStalledCallerIsCutAfterTheGrace) {
    body_rate r(1000, 10s);
    EXPECT_EQ(r.budget(), 10s);
    r.record(4s, 0);
    EXPECT_EQ(r.budget(), 6s);
    r.record(6s, 0);
    EXPECT_TRUE(r.exhausted());
    EXPECT_EQ(r.budget(), 0s);
}

TEST(BodyRate, AByteNowAndThenDoesNotRestartTheClock) {
    // One byte every 2 s against 1000 B/s: each byte gives back 1 ms.
    body_rate r(1000, 10s);
    int bytes = 0;
    while (!r.exhausted() && bytes < 100) {
        r.record(2s, 1);
        ++bytes;
    }
    EXPECT_TRUE(r.exhausted());
    EXPECT_EQ(bytes, 6);  // 12 s of waiting (10 s of grace + 6 ms back), not forever
}

TEST(BodyRate, ATrickleBelowTheRateIsCutAfterLongerThanTheGrace) {
    // A quarter of the rate: the credit falls by 0.75 s a second.
    body_rate r(1000, 3s);
    double waited = 0;
    while (!r.exhausted()) {
        r.record(100ms, 25);
        waited += 0.1;
    }
    EXPECT_NEAR(waited, 4.0, 0.15);
}

TEST(BodyRate, AFastCallerNeverRunsOutAndCannotBankCredit) {
    body_rate r(1000, 2s);
    for (int i = 0; i < 1000; ++i) r.record(10ms, 100000);  // 10 MB/s
    EXPECT_FALSE(r.exhausted());
    EXPECT_EQ(r.budget(), 2s);  // never above the grace
    r.record(2s, 0);            // then it stops: cut after the grace, not later
    EXPECT_TRUE(r.exhausted());
}

TEST(BodyRate, BytesGiveBackTime) {
    body_rate r(1000, 10s);
    r.record(8s, 0);
    EXPECT_EQ(r.budget(), 2s);
    r.record(0s, 3000);  // 3 s worth
    EXPECT_EQ(r.budget(), 5s);
}

}  // namespace
}  // namespace tunnel::relay
