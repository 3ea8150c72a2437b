// Usage analytics' unit of account (docs/relay.md "Usage analytics"): per
// (tenant, name, hour) the requests, bytes in and out, time published,
// errors and latency histogram buckets (latency_buckets.hpp). Counts of the
// same key add up, wherever they were counted (another flush, another relay).
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <string>

#include "usage/latency_buckets.hpp"

namespace tunnel::usage {

inline constexpr std::int64_t seconds_per_hour = 3600;
// The start of the hour holding `unix_seconds`.
[[nodiscard]] constexpr std::int64_t hour_of(std::int64_t unix_seconds) noexcept {
    return unix_seconds - ((unix_seconds % seconds_per_hour) + seconds_per_hour) % seconds_per_hour;
}

struct usage_key {
    std::string tenant;
    std::string name;
    std::int64_t hour = 0;  // unix seconds at the start of the hour (UTC)
    auto operator<=>(const usage_key&) const = default;
};

struct usage_counts {
    std::uint64_t requests = 0;
    std::uint64_t bytes_in = 0;   // from callers, to the origin
    std::uint64_t bytes_out = 0;  // from the origin, to callers
    std::uint64_t errors = 0;     // answered 5xx (by the origin or the relay)
    std::uint64_t tunnel_ms = 0;  // time the name was published in that hour
    latency_histogram latency;    // requests that got an answer

    void merge(const usage_counts& other);
    [[nodiscard]] bool empty() const noexcept {
        return requests == 0 && tunnel_ms == 0 && bytes_in == 0 && bytes_out == 0;
    }
};

using usage_batch = std::map<usage_key, usage_counts>;

struct usage_row {
    usage_key key;
    usage_counts counts;
};

}  // namespace tunnel::usage
