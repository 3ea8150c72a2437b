// The limits `tunnel health` holds each host to, with their defaults, and
// the strict YAML file (--thresholds FILE) that overrides them:
//
//   load_per_cpu: 2.0              # 5-minute load average / CPUs; breach above
//   memory_available_min: 10       # % of MemTotal still available; breach below
//   disk_used_max: 90              # % used on any real filesystem; breach above
//   failed_units_max: 0            # failed systemd units; breach above
//   clock_skew_max: 1s             # |host clock - local clock|; breach above
//
// Unknown keys, wrong types and out-of-range values are errors naming the
// file, the key and the line.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace tunnel::health {

struct thresholds {
    double load_per_cpu = 2.0;
    double memory_available_min = 10.0;  // percent
    double disk_used_max = 90.0;         // percent
    std::size_t failed_units_max = 0;
    std::chrono::milliseconds clock_skew_max{1000};
};

// Parses `text` (the file's contents); `source` names it in messages.
[[nodiscard]] core::result<thresholds> parse_thresholds(std::string_view text,
                                                        const std::string& source);
// Reads and parses a thresholds file.
[[nodiscard]] core::result<thresholds> load_thresholds(const std::string& path);

}  // namespace tunnel::health
