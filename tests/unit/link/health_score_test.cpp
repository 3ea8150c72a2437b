// The transport score `tunnel ui` shows: a clean fast transport scores
// 100, failures, a slow RTT and a near predicted failure take it down, and
// an unhealthy or disconnected one scores (almost) nothing.
#include "link/health_score.hpp"

#include <gtest/gtest.h>

namespace tunnel::link {
namespace {

using namespace std::chrono_literals;

transport_health connected_with(double ewma_ms, int failures = 0) {
    transport_health h;
    h.connected = true;
    h.ewma_ms = ewma_ms;
    h.rtt_ms = ewma_ms;
    h.failure_streak = failures;
    return h;
}

TEST(HealthScore, CleanFastTransportScoresFull) {
    EXPECT_EQ(health_score(connected_with(0.0), {}, 1000ms, 1000ms, std::nullopt), 100);
    EXPECT_EQ(health_score(connected_with(10.0), {}, 1000ms, 1000ms, std::nullopt), 100);
}

TEST(HealthScore, DisconnectedScoresZero) {
    transport_health h;
    EXPECT_EQ(health_score(h, {}, 1000ms, 1000ms, std::nullopt), 0);
}

TEST(HealthScore, RttFailuresAndPredictionTakeItDown) {
    const health_policy p{3, std::nullopt, 5};
    // Half the bound: -15.
    EXPECT_EQ(health_score(connected_with(500), p, 1000ms, 1000ms, std::nullopt), 85);
    // One failure of three: -17 (50 / 3, rounded with the rest).
    EXPECT_EQ(health_score(connected_with(0, 1), p, 1000ms, 1000ms, std::nullopt), 83);
    // A failure predicted now: -20; in 5 of 10 keepalive intervals: -10; at 10 or later: 0.
    EXPECT_EQ(health_score(connected_with(0), p, 1000ms, 1000ms, failure_prediction{0, 1}), 80);
    EXPECT_EQ(health_score(connected_with(0), p, 1000ms, 1000ms, failure_prediction{5, 1}), 90);
    EXPECT_EQ(health_score(connected_with(0), p, 1000ms, 1000ms, failure_prediction{60, 1}), 100);
    // Everything at once stays within 0..100.
    const auto worst =
        health_score(connected_with(5000, 2), p, 1000ms, 1000ms, failure_prediction{0, 0});
    EXPECT_GE(worst, 0);
    EXPECT_LT(worst, 20);
}

TEST(HealthScore, UnhealthyTransportScoresAtMostTen) {
    const health_policy p{2, std::nullopt, 5};
    EXPECT_EQ(health_score(connected_with(1, 2), p, 1000ms, 1000ms, std::nullopt), 10);
}

}  // namespace
}  // namespace tunnel::link
