// The failure prediction on synthetic RTT series: a clean rise crosses where
// the line says, a flat or improving series predicts nothing, noise widens
// the error, and more consistent data narrows it.
#include "link/rtt_prediction.hpp"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "link/transport_health.hpp"

namespace tunnel::link {
namespace {

// RTT = base + slope * t (+ noise), one probe per second.
std::deque<rtt_sample> series(int n, double base, double slope, double noise = 0,
                              unsigned seed = 1) {
    std::mt19937 gen(seed);
    std::normal_distribution<double> d(0, noise > 0 ? noise : 1);
    std::deque<rtt_sample> out;
    for (int i = 0; i < n; ++i)
        out.push_back({static_cast<double>(i), base + slope * i + (noise > 0 ? d(gen) : 0)});
    return out;
}

TEST(RttPrediction, RisingLineCrossesWhereItShould) {
    // 10 ms + 5 ms/s; the last probe (t = 9) is at 55 ms; 300 ms at t = 58.
    auto s = series(10, 10, 5);
    // An exact line has no residuals: a tiny wobble keeps the error finite.
    s[3].rtt_ms += 0.01;
    auto p = predict_failure(s, 300);
    ASSERT_TRUE(p);
    EXPECT_NEAR(p->in_s, 49.0, 0.1);
    EXPECT_GE(p->error_s, 0.0);
    EXPECT_LT(p->error_s, 0.5);
}

TEST(RttPrediction, FlatImprovingOrTooFewIsNone) {
    EXPECT_FALSE(predict_failure(series(20, 50, 0, 2), 300)) << "flat with noise";
    EXPECT_FALSE(predict_failure(series(20, 200, -5, 1), 300)) << "improving";
    EXPECT_FALSE(predict_failure(series(4, 10, 20, 0.1), 300)) << "too few probes";
    EXPECT_FALSE(predict_failure(series(20, 10, 5, 0.1), 0)) << "no bound";
    // A slope the noise cannot tell from zero: no number.
    EXPECT_FALSE(predict_failure(series(8, 50, 0.1, 20, 7), 300));
}

TEST(RttPrediction, AlreadyAboveTheBoundPredictsZero) {
    auto p = predict_failure(series(10, 250, 10, 0.5), 300);
    ASSERT_TRUE(p);
    EXPECT_DOUBLE_EQ(p->in_s, 0.0);
}

TEST(RttPrediction, NoisierDataHasALargerError) {
    auto quiet = predict_failure(series(20, 10, 5, 0.5, 3), 300);
    auto noisy = predict_failure(series(20, 10, 5, 8, 3), 300);
    ASSERT_TRUE(quiet);
    ASSERT_TRUE(noisy);
    EXPECT_LT(quiet->error_s, noisy->error_s);
    // Both near the true crossing (t = 58, last probe t = 19: 39 s), within 3 errors.
    EXPECT_NEAR(quiet->in_s, 39, 3 * quiet->error_s + 0.5);
    EXPECT_NEAR(noisy->in_s, 39, 3 * noisy->error_s + 0.5);
}

TEST(RttPrediction, ErrorShrinksWithMoreConsistentProbes) {
    // The same trend and noise: 6 probes, then 20. Averaged over seeds so the
    // comparison is about the estimator, not one draw.
    double few = 0, many = 0;
    int counted = 0;
    for (unsigned seed = 1; seed <= 20; ++seed) {
        auto a = predict_failure(series(6, 10, 5, 2, seed), 300);
        auto b = predict_failure(series(20, 10, 5, 2, seed), 300);
        if (!a || !b) continue;
        few += a->error_s;
        many += b->error_s;
        ++counted;
    }
    ASSERT_GE(counted, 15);
    EXPECT_LT(many, few / 2) << "mean error with 20 probes vs 6";
}

TEST(RttPrediction, TransportHealthKeepsAWindowOfProbesPerSession) {
    const health_policy policy{3, std::chrono::milliseconds(300), 3};
    transport_health h;
    h.on_connected();
    const auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
    for (int i = 0; i < 30; ++i)
        h.on_probe(std::chrono::microseconds(10'000 + 4'000 * i + (i % 2) * 300), policy,
                   t0 + std::chrono::seconds(i));
    EXPECT_EQ(h.samples.size(), rtt_window);
    auto p = h.predicted_failure(std::chrono::milliseconds(300));
    ASSERT_TRUE(p);
    // 10 + 4 t ms reaches 300 ms at t = 72.5; the last probe was at t = 29.
    EXPECT_NEAR(p->in_s, 43.5, 3 * p->error_s + 0.5);
    h.on_lost();
    EXPECT_FALSE(h.predicted_failure(std::chrono::milliseconds(300)));
    EXPECT_TRUE(h.samples.empty());
}

}  // namespace
}  // namespace tunnel::link
