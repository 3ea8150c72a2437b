// Usage analytics in a cluster's Redis (docs/cluster.md "Usage analytics"):
// the key names and the hash fields, pure so they are tested alone.
//
//   tunnel:usage:<hour>:<tenant>/<name>   hash, one per hour and name:
//       requests, bytes_in, bytes_out, errors, tunnel_ms  (HINCRBY)
//       lat:<bucket>                      latency histogram (latency_buckets.hpp)
//       seq:<node>                        the last flush of that relay added here
//   tunnel:usage:index:<tenant>           sorted set, member "<hour>:<name>", score the hour
//   tunnel:usage:tenants                  sorted set, member the tenant, score its newest hour
//
// <hour> is unix seconds at the start of the hour (UTC).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "usage/usage_counts.hpp"

namespace tunnel::usage {

[[nodiscard]] std::string usage_hash_key(std::string_view prefix, const usage_key& key);
[[nodiscard]] std::string usage_index_key(std::string_view prefix, std::string_view tenant);
[[nodiscard]] std::string usage_tenants_key(std::string_view prefix);
[[nodiscard]] std::string usage_index_member(const usage_key& key);
// "<hour>:<name>" -> (hour, name); nullopt when malformed.
[[nodiscard]] std::optional<std::pair<std::int64_t, std::string>> parse_usage_index_member(
    std::string_view member);
[[nodiscard]] std::string usage_seq_field(std::string_view node);

// The non-zero counts as field, value, field, value... (for HINCRBY).
[[nodiscard]] std::vector<std::string> usage_fields(const usage_counts& counts);
// Counts from HGETALL's field, value, ... list: seq:* and unknown fields,
// buckets outside the layout and values that are not counts are left out.
[[nodiscard]] usage_counts parse_usage_fields(const std::vector<std::string>& flat);

}  // namespace tunnel::usage
