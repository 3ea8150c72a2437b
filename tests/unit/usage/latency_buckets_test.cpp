// Latency histogram buckets and percentiles read from merged buckets
// (usage/latency_buckets.hpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "usage/latency_buckets.hpp"

namespace tunnel::usage {
namespace {

using namespace std::chrono_literals;

TEST(LatencyBuckets, EveryLatencyFallsInsideItsBucket) {
    for (double ms : {0.05, 0.1, 0.11, 1.0, 7.3, 100.0, 999.0, 45'000.0}) {
        const auto d = std::chrono::nanoseconds(static_cast<std::int64_t>(ms * 1e6));
        const int b = latency_bucket(d);
        EXPECT_LE(ms, latency_bucket_upper_ms(b) * 1.000001) << ms;
        if (b > 0) {
            EXPECT_GT(ms, latency_bucket_upper_ms(b - 1)) << ms;
        }
    }
    EXPECT_EQ(latency_bucket(0ns), 0);
    EXPECT_EQ(latency_bucket(std::chrono::hours(2)), latency_bucket_count - 1);
}

TEST(LatencyBuckets, P95OfMergedHistogramsIsThatOfAllSamples) {
    // Two hours with different loads: the p95 of both is read from the
    // merged buckets and lies in the bucket of the true p95 of all samples.
    std::mt19937 rng(7);
    std::lognormal_distribution<double> fast(1.0, 0.3), slow(4.0, 0.5);
    std::vector<double> all;
    latency_histogram a, b;
    for (int i = 0; i < 900; ++i) {
        const double ms = fast(rng);
        all.push_back(ms);
        ++a[latency_bucket(std::chrono::nanoseconds(static_cast<std::int64_t>(ms * 1e6)))];
    }
    for (int i = 0; i < 100; ++i) {
        const double ms = slow(rng);
        all.push_back(ms);
        ++b[latency_bucket(std::chrono::nanoseconds(static_cast<std::int64_t>(ms * 1e6)))];
    }
    latency_histogram merged = a;
    for (const auto& [k, n] : b) merged[k] += n;
    std::sort(all.begin(), all.end());
    const double truth = all[949];  // nearest rank of 0.95 in 1000
    const auto p = percentile(merged, 0.95);
    ASSERT_TRUE(p);
    EXPECT_GE(truth, p->low_ms);
    EXPECT_LE(truth, p->high_ms);
    EXPECT_NEAR(p->ms, truth, 0.2 * truth);
    // Neither hour's own p95 is the answer.
    EXPECT_GT(std::abs(percentile(a, 0.95)->ms - truth), 0.3 * truth);
}

TEST(LatencyBuckets, AnEmptyHistogramHasNoPercentile) {
    EXPECT_FALSE(percentile({}, 0.95));
    EXPECT_FALSE(percentile({{3, 0}}, 0.95));
}

}  // namespace
}  // namespace tunnel::usage
