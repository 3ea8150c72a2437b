// Next-week load forecasts for usage analytics: Holt's linear trend (double
// exponential smoothing) on hourly request counts, with the error it made
// when tried on the past shown next to every number it gives.
//
//   level_t = a*y_t + (1-a)*(level_{t-1} + trend_{t-1})
//   trend_t = b*(level_t - level_{t-1}) + (1-b)*trend_{t-1}
//   forecast_{t+h} = level_t + h*trend_t      (never below 0)
//
// a and b are picked from a small grid by the smallest one-step-ahead mean
// squared error over the series. The backtest fits on all but the last
// holdout hours (a quarter of the history, 12 to 168 h), forecasts them, and
// reports the mean absolute error (MAE) and root mean squared error (RMSE)
// per hour and the relative error of the held-out total. The forecast's
// "plus_minus" is MAE per hour x the horizon: hour-to-hour error; a week's
// trend error can be larger (docs/relay.md "Usage analytics").
#pragma once

#include <optional>
#include <span>
#include <vector>

namespace tunnel::usage {

inline constexpr int forecast_horizon_hours = 168;  // one week
inline constexpr int min_history_hours = 48;

struct holt_model {
    double alpha = 0;
    double beta = 0;
    double level = 0;
    double trend = 0;         // per hour
    double one_step_mse = 0;  // of the chosen a, b over the series
};

// Fits a and b over the grid; `y` needs at least 3 values.
[[nodiscard]] holt_model fit_holt(std::span<const double> y);
// The next `horizon` values after the series the model was fitted on.
[[nodiscard]] std::vector<double> forecast(const holt_model& m, int horizon);

struct backtest_result {
    int holdout_hours = 0;
    double mae = 0;   // per hour
    double rmse = 0;  // per hour
    // |forecast total - actual total| / actual total * 100; nullopt when the
    // held-out hours had no requests.
    std::optional<double> total_error_pct;
};

struct load_forecast {
    int history_hours = 0;
    bool enough_history = false;  // history_hours >= min_history_hours; nothing else set otherwise
    double total = 0;             // requests over the next horizon hours
    double plus_minus = 0;        // backtest MAE per hour x horizon
    backtest_result backtest;
    holt_model model;  // fitted on the whole history
};

// The forecast of the `horizon` hours after `hourly` (oldest first, one
// value per hour, hours without requests as 0).
[[nodiscard]] load_forecast forecast_load(std::span<const double> hourly,
                                          int horizon = forecast_horizon_hours);

}  // namespace tunnel::usage
