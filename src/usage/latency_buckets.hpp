// Request latency as histogram buckets (usage analytics): fixed bounds, so
// the buckets of any hours, names or tenants merge by adding counts, and a
// percentile over any range is read from the merged buckets (never an
// average of percentiles).
//
// Bucket i holds latencies in (upper(i-1), upper(i)], upper(i) =
// 0.1 ms * 2^(i/4): 0.1 ms to ~300 s in 88 buckets, each ~19% wider than the
// one before, so a percentile read from them is within one bucket of the
// truth (percentile_range says which bucket). The last bucket takes
// everything slower.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>

namespace tunnel::usage {

inline constexpr int latency_bucket_count = 88;

// The bucket of a latency.
[[nodiscard]] int latency_bucket(std::chrono::nanoseconds latency) noexcept;
// Bucket i's upper bound in milliseconds (its lower bound is upper(i-1), 0 for i = 0).
[[nodiscard]] double latency_bucket_upper_ms(int bucket) noexcept;

// Bucket -> count; sparse (most requests fall in a few buckets).
using latency_histogram = std::map<int, std::uint64_t>;

struct percentile_estimate {
    double ms = 0;      // interpolated inside the bucket (geometrically)
    double low_ms = 0;  // the bucket's bounds: the true value lies within
    double high_ms = 0;
};

// The q-quantile (0 < q < 1) of the merged histogram; nullopt when it is empty.
[[nodiscard]] std::optional<percentile_estimate> percentile(const latency_histogram& h, double q);

}  // namespace tunnel::usage
