// Health of one transport of a link, and the choice of the active transport
// (pure logic, unit-tested): keepalive probes give an RTT or fail; a failure
// streak of `after_failures` (a probe slower than `rtt_above` counts as a
// failure) makes the transport unhealthy; a transport ranked above the
// active one takes over again after `return_after` healthy probes in a row.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "link/rtt_prediction.hpp"

namespace tunnel::link {

struct health_policy {
    int after_failures = 3;
    std::optional<std::chrono::milliseconds> rtt_above;
    int return_after = 5;
};

struct transport_health {
    bool connected = false;
    int failure_streak = 0;         // failed probes in a row
    int healthy_streak = 0;         // good probes in a row since the last failure or connect
    std::optional<double> rtt_ms;   // last good probe
    std::optional<double> ewma_ms;  // smoothed (alpha 0.3)
    // Failed (a lost session, a failed probe or connect) since the link
    // started: it must pass `return_after` probes before it takes over.
    bool suspect = false;
    std::uint64_t probes = 0;
    std::uint64_t probe_failures = 0;
    // The last `rtt_window` good probes of this session (for the prediction).
    std::deque<rtt_sample> samples;

    void on_connected() noexcept;
    void on_lost() noexcept;
    void on_connect_failed() noexcept { suspect = true; }
    // `rtt` is the probe's round trip, nullopt when it failed or timed out.
    // `at` is when it was sent (the RTT trend's time axis).
    void on_probe(std::optional<std::chrono::microseconds> rtt, const health_policy& p,
                  std::chrono::steady_clock::time_point at = std::chrono::steady_clock::now());

    // When the RTT trend crosses `bound` (rtt_above, else the probe timeout),
    // with its error; nullopt while disconnected, too few probes, or no rise.
    [[nodiscard]] std::optional<failure_prediction> predicted_failure(
        std::chrono::milliseconds bound) const;

    // Connected and fewer failures in a row than the failover threshold.
    [[nodiscard]] bool healthy(const health_policy& p) const noexcept {
        return connected && failure_streak < p.after_failures;
    }
    // Healthy and no failure since its last good probe.
    [[nodiscard]] bool clean() const noexcept { return connected && failure_streak == 0; }
};

// The transport that should carry the link now. `ranked` lists transport
// indexes best first (the preferred one, then the others in priority order);
// `active` is the current one, if any. Rules:
//  * an active transport that is healthy stays, unless one ranked above it
//    has had `return_after` healthy probes in a row (return to preferred),
//    or is clean and has never failed (at start, the preferred transport
//    takes over as soon as it connects, even if another one was faster);
//  * otherwise the best-ranked healthy transport takes over at once;
//  * nullopt when none is healthy.
[[nodiscard]] std::optional<std::size_t> choose_transport(
    const std::vector<transport_health>& health, const std::vector<std::size_t>& ranked,
    std::optional<std::size_t> active, const health_policy& p);

// Indexes 0..n-1 with `preferred` first.
[[nodiscard]] std::vector<std::size_t> rank_transports(std::size_t n, std::size_t preferred);

}  // namespace tunnel::link
