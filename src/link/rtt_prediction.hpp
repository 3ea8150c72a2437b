// When will a transport's keepalive RTT cross its failure bound? A
// least-squares line through the last probes (time in seconds, RTT in ms),
// extrapolated to the bound, with the error of that crossing time from the
// residual standard error (pure logic, unit-tested):
//   fit  y = m + b (t - t_mean), residual variance s^2 = SSR / (n - 2),
//        var(m) = s^2 / n, var(b) = s^2 / Sxx (independent: t is centred);
//   crossing t* = t_mean + (bound - m) / b, reported as t* - t_last;
//   error (one standard deviation, delta method):
//        sqrt(var(m) / b^2 + (bound - m)^2 var(b) / b^4).
// No prediction ("none") with fewer than `min_samples` probes, or when the
// slope is not clearly rising (b <= 2 standard errors of b: flat, improving
// or too noisy to tell). A fit already at or above the bound predicts 0.
#pragma once

#include <cstddef>
#include <deque>
#include <optional>

namespace tunnel::link {

struct rtt_sample {
    double t_s = 0;     // seconds since any fixed origin
    double rtt_ms = 0;  // the probe's round trip
};

struct failure_prediction {
    double in_s = 0;     // seconds from the last sample until the bound is crossed
    double error_s = 0;  // one standard deviation of in_s
};

inline constexpr std::size_t rtt_window = 20;      // probes kept per transport
inline constexpr std::size_t min_rtt_samples = 5;  // fewer: no prediction

[[nodiscard]] std::optional<failure_prediction> predict_failure(
    const std::deque<rtt_sample>& samples, double bound_ms,
    std::size_t min_samples = min_rtt_samples);

}  // namespace tunnel::link
