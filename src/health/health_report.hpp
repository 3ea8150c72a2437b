// One round of `tunnel health`: each host's sample and checks, rendered as
// a text table per host, one JSON document, or Prometheus text; and the
// exit status the round earns.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "health/evaluation.hpp"
#include "health/host_sample.hpp"
#include "health/thresholds.hpp"

namespace tunnel::health {

// ok: every check ok or unknown; breach: a check over its threshold;
// invalid: reached, but the probe failed or its answer was rejected;
// unreachable: never got to run the probe (connect, auth, host key).
enum class host_health { ok, breach, invalid, unreachable };
[[nodiscard]] std::string_view to_string(host_health h) noexcept;

struct host_report {
    std::string name;
    std::string destination;  // user@host:port
    bool reached = false;     // connected and ran the probe
    bool up = false;          // ... and its answer was readable
    std::string error;        // why not up, or why the probe's answer was unusable
    std::optional<host_sample> sample;
    std::optional<clock_reading> clock;
    std::chrono::milliseconds round_trip{0};
    std::vector<check_result> checks;

    [[nodiscard]] host_health health() const noexcept;
};

// Exit codes, as `tunnel run`: 1 a host breached a threshold or answered
// nonsense, 4 a host was unreachable (5 both), 0 all healthy.
inline constexpr int exit_breach = 1;
inline constexpr int exit_unreachable = 4;
[[nodiscard]] int exit_code(const std::vector<host_report>& hosts) noexcept;

[[nodiscard]] nlohmann::json to_json(const std::vector<host_report>& hosts, const thresholds& t);
[[nodiscard]] std::string format_text(const std::vector<host_report>& hosts);
// tunnel_host_up{host="..."} and the other gauges (docs/health.md), one
// series per host and per host and mount, from the same numbers as to_json.
[[nodiscard]] std::string prometheus_text(const std::vector<host_report>& hosts,
                                          std::uint64_t rounds);

}  // namespace tunnel::health
