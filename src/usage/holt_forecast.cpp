#include "usage/holt_forecast.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace tunnel::usage {

namespace {

constexpr double alphas[] = {0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0};
constexpr double betas[] = {0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5};

// Runs the recursion with a, b; returns the model after the last value and
// its one-step mean squared error (from the third value on).
holt_model run(std::span<const double> y, double a, double b) {
    holt_model m;
    m.alpha = a;
    m.beta = b;
    // The trend starts as the mean slope of the first (up to) 12 hours.
    const std::size_t k = std::min<std::size_t>(y.size(), 12);
    m.level = y[0];
    m.trend = k > 1 ? (y[k - 1] - y[0]) / static_cast<double>(k - 1) : 0.0;
    double sse = 0;
    std::size_t n = 0;
    for (std::size_t t = 1; t < y.size(); ++t) {
        const double predicted = m.level + m.trend;
        if (t >= 2) {
            sse += (y[t] - predicted) * (y[t] - predicted);
            ++n;
        }
        const double level = a * y[t] + (1 - a) * predicted;
        m.trend = b * (level - m.level) + (1 - b) * m.trend;
        m.level = level;
    }
    m.one_step_mse = n ? sse / static_cast<double>(n) : 0.0;
    return m;
}

}  // namespace

holt_model fit_holt(std::span<const double> y) {
    holt_model best;
    best.one_step_mse = std::numeric_limits<double>::infinity();
    if (y.size() < 3) return best;
    for (const double a : alphas)
        for (const double b : betas) {
            const auto m = run(y, a, b);
            // Ties (exact series) go to the smoothest parameters, tried first.
            if (m.one_step_mse < best.one_step_mse - 1e-12) best = m;
        }
    return best;
}

std::vector<double> forecast(const holt_model& m, int horizon) {
    std::vector<double> out;
    out.reserve(static_cast<std::size_t>(std::max(horizon, 0)));
    for (int h = 1; h <= horizon; ++h) out.push_back(std::max(0.0, m.level + h * m.trend));
    return out;
}

load_forecast forecast_load(std::span<const double> hourly, int horizon) {
    load_forecast f;
    f.history_hours = static_cast<int>(hourly.size());
    if (f.history_hours < min_history_hours) return f;
    f.enough_history = true;

    const int holdout = std::clamp(f.history_hours / 4, 12, forecast_horizon_hours);
    const auto train = hourly.first(hourly.size() - static_cast<std::size_t>(holdout));
    const auto held = hourly.last(static_cast<std::size_t>(holdout));
    const auto predicted = forecast(fit_holt(train), holdout);
    double abs_sum = 0, sq_sum = 0, predicted_total = 0, actual_total = 0;
    for (int i = 0; i < holdout; ++i) {
        const double e = predicted[static_cast<std::size_t>(i)] - held[static_cast<std::size_t>(i)];
        abs_sum += std::abs(e);
        sq_sum += e * e;
        predicted_total += predicted[static_cast<std::size_t>(i)];
        actual_total += held[static_cast<std::size_t>(i)];
    }
    f.backtest.holdout_hours = holdout;
    f.backtest.mae = abs_sum / holdout;
    f.backtest.rmse = std::sqrt(sq_sum / holdout);
    if (actual_total > 0)
        f.backtest.total_error_pct = std::abs(predicted_total - actual_total) / actual_total * 100;

    f.model = fit_holt(hourly);
    for (const double v : forecast(f.model, horizon)) f.total += v;
    f.plus_minus = f.backtest.mae * horizon;
    return f;
}

}  // namespace tunnel::usage
