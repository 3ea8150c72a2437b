// The bounded usage a relay keeps while Redis is away
// (usage/pending_usage.hpp): counts add up, the key bound drops only new
// keys, and the batch in flight keeps its number until all of it arrived.
#include "usage/pending_usage.hpp"

#include <gtest/gtest.h>

namespace tunnel::usage {
namespace {

usage_batch batch_of(std::initializer_list<std::pair<std::string, std::uint64_t>> names,
                     std::int64_t hour = 3600) {
    usage_batch b;
    for (const auto& [name, requests] : names) b[{"acme", name, hour}].requests = requests;
    return b;
}

TEST(PendingUsage, CountsOfAKeyAddUp) {
    pending_usage p(10);
    EXPECT_EQ(p.add(batch_of({{"a", 1}, {"b", 2}})), 0u);
    EXPECT_EQ(p.add(batch_of({{"a", 4}})), 0u);
    EXPECT_EQ(p.keys(), 2u);
    auto& f = p.in_flight(100);
    EXPECT_EQ(f.seq, 100u);
    EXPECT_EQ(f.batch.at({"acme", "a", 3600}).requests, 5u);
    EXPECT_EQ(f.batch.at({"acme", "b", 3600}).requests, 2u);
}

TEST(PendingUsage, TheBoundDropsNewKeysOnly) {
    pending_usage p(2);
    EXPECT_EQ(p.add(batch_of({{"a", 1}, {"b", 1}})), 0u);
    EXPECT_EQ(p.add(batch_of({{"c", 1}, {"a", 1}})), 1u);  // c dropped, a still adds up
    EXPECT_EQ(p.keys(), 2u);
    EXPECT_EQ(p.dropped(), 1u);
    // Keys in flight count against the bound too.
    (void)p.in_flight(1);
    EXPECT_EQ(p.add(batch_of({{"d", 1}})), 1u);
    EXPECT_EQ(p.dropped(), 2u);
    EXPECT_EQ(p.add(batch_of({{"e", 0}})), 0u);  // nothing counted: nothing kept
    EXPECT_EQ(p.keys(), 2u);
}

TEST(PendingUsage, TheBatchInFlightKeepsItsNumberUntilAllOfItArrived) {
    pending_usage p(10);
    (void)p.add(batch_of({{"a", 1}, {"b", 1}}));
    auto& first = p.in_flight(500);
    EXPECT_EQ(first.seq, 500u);
    p.delivered({"acme", "a", 3600});
    // Redis went away; new counts wait beside the flight, never join it.
    (void)p.add(batch_of({{"b", 10}, {"c", 1}}));
    auto& retry = p.in_flight(900);
    EXPECT_EQ(retry.seq, 500u);
    ASSERT_EQ(retry.batch.size(), 1u);
    EXPECT_EQ(retry.batch.at({"acme", "b", 3600}).requests, 1u);
    p.delivered({"acme", "b", 3600});
    // Then what waited, under a new number even if the clock went back.
    auto& next = p.in_flight(200);
    EXPECT_EQ(next.seq, 501u);
    EXPECT_EQ(next.batch.at({"acme", "b", 3600}).requests, 10u);
    EXPECT_EQ(next.batch.size(), 2u);
    p.delivered({"acme", "b", 3600});
    p.delivered({"acme", "c", 3600});
    EXPECT_TRUE(p.empty());
    EXPECT_TRUE(p.in_flight(1000).batch.empty());
}

}  // namespace
}  // namespace tunnel::usage
