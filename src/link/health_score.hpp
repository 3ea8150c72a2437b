// One number per transport for people watching a link (`tunnel ui`, `tunnel
// ls --json` "score"): 100 is a clean, fast, steady transport, 0 one that is
// not connected. Pure logic, unit-tested. From 100 it takes away
//   * up to 50 for the failure streak (streak / after_failures of it),
//   * up to 30 for the smoothed RTT (ewma / bound of it),
//   * up to 20 for a predicted failure that is near (all of it at 0 s, none
//     at 10 keepalive intervals or later),
// and a transport that is no longer healthy (the streak reached the failover
// threshold) scores at most 10.
#pragma once

#include <chrono>
#include <optional>

#include "link/rtt_prediction.hpp"
#include "link/transport_health.hpp"

namespace tunnel::link {

// `bound` is the RTT counted as a failure (the link's probe timeout).
[[nodiscard]] int health_score(const transport_health& h, const health_policy& p,
                               std::chrono::milliseconds bound, std::chrono::milliseconds keepalive,
                               const std::optional<failure_prediction>& predicted);

}  // namespace tunnel::link
