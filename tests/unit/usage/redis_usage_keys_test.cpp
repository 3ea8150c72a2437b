// Usage analytics in Redis (docs/cluster.md "Usage analytics"): key names,
// the hash fields both ways, and that counts of two relays merged field by
// field give the same totals and p95 as if one relay had counted them all.
#include "usage/redis_usage_keys.hpp"

#include <gtest/gtest.h>

#include <chrono>

namespace tunnel::usage {
namespace {

using namespace std::chrono_literals;

TEST(RedisUsageKeys, NamesTheHourTheTenantAndTheName) {
    const usage_key k{"acme", "web", 1765065600};
    EXPECT_EQ(usage_hash_key("tunnel:", k), "tunnel:usage:1765065600:acme/web");
    EXPECT_EQ(usage_index_key("tunnel:", "acme"), "tunnel:usage:index:acme");
    EXPECT_EQ(usage_tenants_key("tunnel:"), "tunnel:usage:tenants");
    EXPECT_EQ(usage_index_member(k), "1765065600:web");
    EXPECT_EQ(usage_seq_field("relay-a"), "seq:relay-a");
    const auto m = parse_usage_index_member("1765065600:web");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->first, 1765065600);
    EXPECT_EQ(m->second, "web");
    for (const char* bad : {"", ":web", "1765065600:", "17650656x0:web", "1765065601:web", "web"})
        EXPECT_FALSE(parse_usage_index_member(bad)) << bad;
}

TEST(RedisUsageKeys, FieldsGoThereAndBack) {
    usage_counts c;
    c.requests = 7;
    c.bytes_in = 700;
    c.bytes_out = 7000;
    c.errors = 1;
    c.tunnel_ms = 3'600'000;
    c.latency[3] = 4;
    c.latency[40] = 3;
    const auto fields = usage_fields(c);
    EXPECT_EQ(fields.size(), 14u);  // 7 fields with their values
    const auto back = parse_usage_fields(fields);
    EXPECT_EQ(back.requests, 7u);
    EXPECT_EQ(back.bytes_in, 700u);
    EXPECT_EQ(back.bytes_out, 7000u);
    EXPECT_EQ(back.errors, 1u);
    EXPECT_EQ(back.tunnel_ms, 3'600'000u);
    EXPECT_EQ(back.latency, c.latency);
    // Zero counts are not sent.
    usage_counts only;
    only.tunnel_ms = 5;
    EXPECT_EQ(usage_fields(only), (std::vector<std::string>{"tunnel_ms", "5"}));
}

TEST(RedisUsageKeys, ReadingSkipsWhatIsNotACount) {
    const auto c = parse_usage_fields({"requests", "3", "seq:relay-a", "1765065600123", "lat:2",
                                       "5", "lat:88", "9", "lat:-1", "1", "lat:x", "1", "bytes_in",
                                       "-4", "bytes_out", "12abc", "mystery", "1", "errors"});
    EXPECT_EQ(c.requests, 3u);
    EXPECT_EQ(c.bytes_in, 0u);
    EXPECT_EQ(c.bytes_out, 0u);
    EXPECT_EQ(c.errors, 0u);  // a field without its value
    EXPECT_EQ(c.latency, (latency_histogram{{2, 5}}));
}

TEST(RedisUsageKeys, TwoRelaysHistogramsMergeIntoTheWholesP95) {
    usage_counts a, b, whole;
    for (int i = 1; i <= 1000; ++i) {
        const auto latency = std::chrono::microseconds(i * 137);
        auto& half = i % 3 == 0 ? a : b;
        ++half.requests;
        ++half.latency[latency_bucket(latency)];
        ++whole.requests;
        ++whole.latency[latency_bucket(latency)];
    }
    // As Redis adds them: HINCRBY of each relay's fields into one hash.
    usage_counts merged = parse_usage_fields(usage_fields(a));
    merged.merge(parse_usage_fields(usage_fields(b)));
    EXPECT_EQ(merged.requests, 1000u);
    EXPECT_EQ(merged.latency, whole.latency);
    const auto p = percentile(merged.latency, 0.95);
    const auto q = percentile(whole.latency, 0.95);
    ASSERT_TRUE(p && q);
    EXPECT_DOUBLE_EQ(p->ms, q->ms);
    EXPECT_LE(p->low_ms, 0.95 * 1000 * 0.137);
    EXPECT_GE(p->high_ms, 0.95 * 1000 * 0.137);
}

}  // namespace
}  // namespace tunnel::usage
