// The relay's `usage:` section (docs/relay.md "Usage analytics"):
//
//   usage:
//     database: /var/lib/tunnel/usage.db   # SQLite; created if missing
//     flush_interval: 10s                  # how often counts reach the database
//     retention: 90d                       # hours older than this are deleted
//
// Absent: usage analytics are off. With `cluster:` usage is kept in the
// cluster's Redis (docs/cluster.md "Usage analytics") and `database` is not
// needed (nor used).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "core/yaml_config.hpp"

namespace tunnel::usage {

struct usage_config {
    std::string database;
    std::chrono::milliseconds flush_interval{std::chrono::seconds(10)};
    std::chrono::hours retention{24 * 90};
    bool in_cluster = false;  // the relay has `cluster:`: kept in Redis
};

inline constexpr std::chrono::milliseconds min_flush_interval{50};
inline constexpr std::chrono::milliseconds max_flush_interval{std::chrono::hours(1)};
inline constexpr std::chrono::hours min_retention{24};
inline constexpr std::chrono::hours max_retention{24 * 3660};

// "90d", "36h", "2160h" (days or any core::parse_duration text), whole hours.
[[nodiscard]] core::result<std::chrono::hours> parse_retention(std::string_view text);

// Reads `usage:`; problems go to `r` with their path. `in_cluster`: the
// relay has `cluster:` (database optional and unused).
void read_usage_config(core::yaml_reader& r, const YAML::Node& node, const std::string& path,
                       usage_config& out, bool in_cluster = false);

// "key: value" lines for the relay's describe().
[[nodiscard]] std::vector<std::string> describe(const usage_config& config);

}  // namespace tunnel::usage
