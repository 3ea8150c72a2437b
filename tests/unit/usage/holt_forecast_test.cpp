// Holt's linear trend forecasts and their backtest (usage/holt_forecast.hpp)
// on synthetic series whose answer is known.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "usage/holt_forecast.hpp"

namespace tunnel::usage {
namespace {

std::vector<double> linear(int n, double start, double slope) {
    std::vector<double> y;
    for (int t = 0; t < n; ++t) y.push_back(start + slope * t);
    return y;
}

double linear_total(int n, double start, double slope, int horizon) {
    double sum = 0;
    for (int h = 0; h < horizon; ++h) sum += start + slope * (n + h);
    return sum;
}

TEST(HoltForecast, ALinearTrendIsRecoveredWithItsSlope) {
    const auto y = linear(200, 10, 2);
    const auto m = fit_holt(y);
    EXPECT_NEAR(m.trend, 2.0, 1e-6);
    EXPECT_NEAR(m.level, 10 + 2 * 199, 1e-6);
    const auto f = forecast_load(y);
    ASSERT_TRUE(f.enough_history);
    EXPECT_NEAR(f.total, linear_total(200, 10, 2, 168), 1e-3);
    EXPECT_NEAR(f.backtest.mae, 0.0, 1e-6);
    EXPECT_EQ(f.backtest.holdout_hours, 50);
    ASSERT_TRUE(f.backtest.total_error_pct);
    EXPECT_NEAR(*f.backtest.total_error_pct, 0.0, 1e-6);
}

TEST(HoltForecast, AConstantLoadForecastsTheSameLoadWithNoError) {
    const std::vector<double> y(96, 50.0);
    const auto f = forecast_load(y);
    ASSERT_TRUE(f.enough_history);
    EXPECT_NEAR(f.model.trend, 0.0, 1e-9);
    EXPECT_NEAR(f.total, 50.0 * 168, 1e-6);
    EXPECT_NEAR(f.plus_minus, 0.0, 1e-9);
    EXPECT_EQ(f.backtest.holdout_hours, 24);
}

TEST(HoltForecast, ANoisyTrendIsForecastWithinItsReportedError) {
    std::mt19937 rng(42);
    std::normal_distribution<double> noise(0.0, 5.0);
    std::vector<double> y;
    for (int t = 0; t < 336; ++t) y.push_back(100 + 0.5 * t + noise(rng));
    const auto f = forecast_load(y);
    ASSERT_TRUE(f.enough_history);
    const double truth = linear_total(336, 100, 0.5, 168);
    // Within 6% of the noiseless truth. (Not always within plus_minus: that
    // is hour-to-hour error, and a week's trend error can be larger; the
    // docs say so.)
    EXPECT_NEAR(f.total, truth, 0.06 * truth);
    EXPECT_GT(f.plus_minus, 0.0);
    // The reported error reflects the noise: MAE of N(0, 5) alone is ~4.
    EXPECT_GT(f.backtest.mae, 3.0);
    EXPECT_LT(f.backtest.mae, 10.0);
    EXPECT_GE(f.backtest.rmse, f.backtest.mae);
    EXPECT_NEAR(f.model.trend, 0.5, 0.2);
}

TEST(HoltForecast, ABreakInTheTrendShowsUpAsBacktestError) {
    // Flat, then climbing in the held-out quarter: a forecast from the flat
    // part misses, and says so.
    std::vector<double> y(150, 20.0);
    for (int t = 0; t < 50; ++t) y.push_back(20.0 + 3 * t);
    const auto f = forecast_load(y);
    ASSERT_TRUE(f.enough_history);
    EXPECT_GT(f.backtest.mae, 20.0);
    ASSERT_TRUE(f.backtest.total_error_pct);
    EXPECT_GT(*f.backtest.total_error_pct, 50.0);
}

TEST(HoltForecast, TooLittleHistoryGivesNoNumber) {
    const auto f = forecast_load(linear(min_history_hours - 1, 5, 1));
    EXPECT_FALSE(f.enough_history);
    EXPECT_EQ(f.history_hours, min_history_hours - 1);
    EXPECT_EQ(f.total, 0.0);
    EXPECT_TRUE(forecast_load(linear(min_history_hours, 5, 1)).enough_history);
}

TEST(HoltForecast, AForecastNeverGoesBelowZero) {
    const auto y = linear(100, 300, -3);  // reaches 3 at the end, then would go negative
    for (double v : forecast(fit_holt(y), 168)) EXPECT_GE(v, 0.0);
}

}  // namespace
}  // namespace tunnel::usage
