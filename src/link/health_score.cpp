#include "link/health_score.hpp"

#include <algorithm>
#include <cmath>

namespace tunnel::link {

namespace {

double clamp01(double v) {
    return std::clamp(v, 0.0, 1.0);
}

}  // namespace

int health_score(const transport_health& h, const health_policy& p, std::chrono::milliseconds bound,
                 std::chrono::milliseconds keepalive,
                 const std::optional<failure_prediction>& predicted) {
    if (!h.connected) return 0;
    double score = 100;
    const int after = std::max(p.after_failures, 1);
    score -= 50 * clamp01(static_cast<double>(h.failure_streak) / after);
    if (h.ewma_ms && bound.count() > 0)
        score -= 30 * clamp01(*h.ewma_ms / static_cast<double>(bound.count()));
    if (predicted) {
        const double horizon_s =
            10 * std::max(std::chrono::duration<double>(keepalive).count(), 0.001);
        score -= 20 * (1 - clamp01(predicted->in_s / horizon_s));
    }
    if (!h.healthy(p)) score = std::min(score, 10.0);
    return static_cast<int>(std::lround(std::clamp(score, 0.0, 100.0)));
}

}  // namespace tunnel::link
