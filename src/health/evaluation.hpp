// One host's sample held against the thresholds: a check per fact, each
// ok, breach, unknown (the host did not say, e.g. no systemd) or invalid
// (the host said something the parser rejected).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "health/host_sample.hpp"
#include "health/thresholds.hpp"

namespace tunnel::health {

enum class check_status { ok, breach, unknown, invalid };
[[nodiscard]] std::string_view to_string(check_status s) noexcept;

struct check_result {
    std::string check;  // "load", "memory", "disk /var", "failed_units", "clock_skew", "probe"
    check_status status = check_status::unknown;
    std::optional<double> value;  // what was measured (load per CPU, %, count, seconds)
    std::optional<double> limit;  // the threshold it was held to
    std::string message;          // one line for people: the numbers, or why unknown
};

// The host's clock against ours. The host read its clock somewhere between
// `local_before` (we asked) and `local_after` (its answer arrived): the skew
// is measured against the middle of that window, so it is right to within
// half the round trip (plus half a second when the host's date has no %N).
struct clock_reading {
    double skew_seconds = 0;  // host - local; positive: the host is ahead
    double uncertainty_seconds = 0;
};
[[nodiscard]] std::optional<clock_reading> read_clock(const host_sample& s, double local_before,
                                                      double local_after);

// The checks in a fixed order: probe (only with problems), load, memory,
// one per disk, failed_units, clock_skew.
[[nodiscard]] std::vector<check_result> evaluate(const host_sample& s,
                                                 const std::optional<clock_reading>& clock,
                                                 const thresholds& t);

}  // namespace tunnel::health
