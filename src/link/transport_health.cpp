#include "link/transport_health.hpp"

namespace tunnel::link {

void transport_health::on_connected() noexcept {
    connected = true;
    failure_streak = 0;
    healthy_streak = 0;
    samples.clear();
}

void transport_health::on_lost() noexcept {
    if (connected) suspect = true;
    connected = false;
    healthy_streak = 0;
    rtt_ms.reset();
    samples.clear();
}

std::optional<failure_prediction> transport_health::predicted_failure(
    std::chrono::milliseconds bound) const {
    if (!connected) return std::nullopt;
    return predict_failure(samples, static_cast<double>(bound.count()));
}

void transport_health::on_probe(std::optional<std::chrono::microseconds> rtt,
                                const health_policy& p, std::chrono::steady_clock::time_point at) {
    ++probes;
    const bool too_slow = rtt && p.rtt_above && *rtt > *p.rtt_above;
    if (rtt) {
        const double ms = static_cast<double>(rtt->count()) / 1000.0;
        rtt_ms = ms;
        ewma_ms = ewma_ms ? 0.3 * ms + 0.7 * *ewma_ms : ms;
        const double t = std::chrono::duration<double>(at.time_since_epoch()).count();
        samples.push_back({t, ms});
        if (samples.size() > rtt_window) samples.pop_front();
    }
    if (!rtt || too_slow) {
        suspect = true;
        ++probe_failures;
        ++failure_streak;
        healthy_streak = 0;
        return;
    }
    failure_streak = 0;
    ++healthy_streak;
}

std::vector<std::size_t> rank_transports(std::size_t n, std::size_t preferred) {
    std::vector<std::size_t> out;
    if (preferred < n) out.push_back(preferred);
    for (std::size_t i = 0; i < n; ++i)
        if (i != preferred) out.push_back(i);
    return out;
}

std::optional<std::size_t> choose_transport(const std::vector<transport_health>& health,
                                            const std::vector<std::size_t>& ranked,
                                            std::optional<std::size_t> active,
                                            const health_policy& p) {
    if (active && *active < health.size() && health[*active].healthy(p)) {
        for (auto i : ranked) {
            if (i == *active) break;  // nothing ranked above it is ready
            if (i < health.size() && health[i].clean() &&
                (health[i].healthy_streak >= p.return_after || !health[i].suspect))
                return i;
        }
        return active;
    }
    for (auto i : ranked)
        if (i < health.size() && health[i].healthy(p)) return i;
    return std::nullopt;
}

}  // namespace tunnel::link
