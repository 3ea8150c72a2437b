#include "link/rtt_prediction.hpp"

#include <algorithm>
#include <cmath>

namespace tunnel::link {

std::optional<failure_prediction> predict_failure(const std::deque<rtt_sample>& samples,
                                                  double bound_ms, std::size_t min_samples) {
    const std::size_t n = samples.size();
    if (n < std::max<std::size_t>(min_samples, 3) || !(bound_ms > 0)) return std::nullopt;
    double t_mean = 0, y_mean = 0;
    for (const auto& s : samples) {
        t_mean += s.t_s;
        y_mean += s.rtt_ms;
    }
    t_mean /= static_cast<double>(n);
    y_mean /= static_cast<double>(n);
    double sxx = 0, sxy = 0;
    for (const auto& s : samples) {
        sxx += (s.t_s - t_mean) * (s.t_s - t_mean);
        sxy += (s.t_s - t_mean) * (s.rtt_ms - y_mean);
    }
    if (!(sxx > 0)) return std::nullopt;  // all at one instant
    const double b = sxy / sxx;
    double ssr = 0;
    for (const auto& s : samples) {
        const double r = s.rtt_ms - (y_mean + b * (s.t_s - t_mean));
        ssr += r * r;
    }
    const double s2 = ssr / static_cast<double>(n - 2);
    const double var_b = s2 / sxx;
    const double var_m = s2 / static_cast<double>(n);
    // Flat, improving, or a slope the noise cannot tell from zero.
    if (!(b > 0) || b <= 2 * std::sqrt(var_b)) return std::nullopt;
    const double t_last = samples.back().t_s;
    const double gap = bound_ms - y_mean;
    const double crossing = t_mean + gap / b;
    const double error = std::sqrt(var_m / (b * b) + gap * gap * var_b / (b * b * b * b));
    if (!std::isfinite(crossing) || !std::isfinite(error)) return std::nullopt;
    return failure_prediction{std::max(0.0, crossing - t_last), error};
}

}  // namespace tunnel::link
