#include "usage/latency_buckets.hpp"

#include <algorithm>
#include <cmath>

namespace tunnel::usage {

namespace {
constexpr double first_upper_ms = 0.1;
}

int latency_bucket(std::chrono::nanoseconds latency) noexcept {
    const double ms = std::chrono::duration<double, std::milli>(latency).count();
    if (!(ms > first_upper_ms)) return 0;
    // Smallest i with 0.1 * 2^(i/4) >= ms.
    const int i = static_cast<int>(std::ceil(4.0 * std::log2(ms / first_upper_ms) - 1e-9));
    return std::clamp(i, 0, latency_bucket_count - 1);
}

double latency_bucket_upper_ms(int bucket) noexcept {
    return first_upper_ms * std::exp2(static_cast<double>(bucket) / 4.0);
}

std::optional<percentile_estimate> percentile(const latency_histogram& h, double q) {
    std::uint64_t total = 0;
    for (const auto& [b, n] : h) total += n;
    if (total == 0) return std::nullopt;
    // The rank of the q-quantile among `total` sorted values (1-based, nearest-rank).
    const auto rank =
        static_cast<std::uint64_t>(std::max(1.0, std::ceil(q * static_cast<double>(total))));
    std::uint64_t seen = 0;
    for (const auto& [b, n] : h) {
        if (n == 0) continue;
        if (seen + n < rank) {
            seen += n;
            continue;
        }
        percentile_estimate e;
        e.high_ms = latency_bucket_upper_ms(b);
        e.low_ms = b == 0 ? 0.0 : latency_bucket_upper_ms(b - 1);
        // Where the rank falls inside the bucket, spread geometrically.
        const double f = static_cast<double>(rank - seen) / static_cast<double>(n);
        const double lo = b == 0 ? e.high_ms / 2 : e.low_ms;
        e.ms = lo * std::pow(e.high_ms / lo, f);
        if (b == 0) e.ms = std::min(e.ms, e.high_ms);
        return e;
    }
    return std::nullopt;
}

}  // namespace tunnel::usage
