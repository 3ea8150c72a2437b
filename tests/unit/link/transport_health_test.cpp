#include "link/transport_health.hpp"

#include <gtest/gtest.h>

namespace tunnel::link {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

const health_policy policy{2, milliseconds(500), 3};

std::vector<transport_health> lanes(std::size_t n) {
    std::vector<transport_health> h(n);
    for (auto& t : h) t.on_connected();
    return h;
}

TEST(TransportHealth, FailureStreakAndSlowProbes) {
    transport_health h;
    EXPECT_FALSE(h.healthy(policy));
    h.on_connected();
    EXPECT_TRUE(h.healthy(policy));
    h.on_probe(microseconds(2'000), policy);
    EXPECT_EQ(h.healthy_streak, 1);
    EXPECT_DOUBLE_EQ(*h.rtt_ms, 2.0);
    h.on_probe(std::nullopt, policy);
    EXPECT_EQ(h.failure_streak, 1);
    EXPECT_EQ(h.healthy_streak, 0);
    EXPECT_TRUE(h.healthy(policy));
    EXPECT_FALSE(h.clean());
    h.on_probe(microseconds(600'000), policy);  // above rtt_above: a failure too
    EXPECT_EQ(h.failure_streak, 2);
    EXPECT_FALSE(h.healthy(policy));
    EXPECT_DOUBLE_EQ(*h.rtt_ms, 600.0);
    h.on_probe(microseconds(1'000), policy);
    EXPECT_EQ(h.failure_streak, 0);
    EXPECT_TRUE(h.healthy(policy));
    EXPECT_EQ(h.probes, 4u);
    EXPECT_EQ(h.probe_failures, 2u);
    h.on_lost();
    EXPECT_FALSE(h.healthy(policy));
    EXPECT_FALSE(h.rtt_ms);
}

TEST(TransportHealth, RankPutsThePreferredFirst) {
    EXPECT_EQ(rank_transports(3, 0), (std::vector<std::size_t>{0, 1, 2}));
    EXPECT_EQ(rank_transports(3, 2), (std::vector<std::size_t>{2, 0, 1}));
}

TEST(TransportHealth, StartsOnTheBestConnectedTransport) {
    auto h = lanes(3);
    h[0].on_lost();
    EXPECT_EQ(choose_transport(h, rank_transports(3, 0), std::nullopt, policy), 1u);
    h[1].on_lost();
    h[2].on_lost();
    EXPECT_EQ(choose_transport(h, rank_transports(3, 0), std::nullopt, policy), std::nullopt);
}

TEST(TransportHealth, APreferredTransportThatNeverFailedTakesOverAtOnce) {
    std::vector<transport_health> h(2);
    h[1].on_connected();
    const auto ranked = rank_transports(2, 0);
    EXPECT_EQ(choose_transport(h, ranked, std::nullopt, policy), 1u);
    h[0].on_connected();  // connected later, never failed: no return_after wait
    EXPECT_EQ(choose_transport(h, ranked, 1, policy), 0u);
    // One that failed to connect first must prove itself.
    std::vector<transport_health> g(2);
    g[1].on_connected();
    g[0].on_connect_failed();
    g[0].on_connected();
    EXPECT_EQ(choose_transport(g, ranked, 1, policy), 1u);
    for (int i = 0; i < 3; ++i) g[0].on_probe(microseconds(1'000), policy);
    EXPECT_EQ(choose_transport(g, ranked, 1, policy), 0u);
}

TEST(TransportHealth, FailsOverAfterTheStreakAndReturnsAfterHealthyProbes) {
    auto h = lanes(2);
    const auto ranked = rank_transports(2, 0);
    std::optional<std::size_t> active = 0;
    h[0].on_probe(std::nullopt, policy);
    active = choose_transport(h, ranked, active, policy);
    EXPECT_EQ(active, 0u) << "one failure is below after_failures";
    h[0].on_probe(std::nullopt, policy);
    active = choose_transport(h, ranked, active, policy);
    EXPECT_EQ(active, 1u);
    // The preferred one recovers: it needs return_after good probes in a row.
    h[0].on_lost();
    h[0].on_connected();
    for (int i = 0; i < 2; ++i) {
        h[0].on_probe(microseconds(1'000), policy);
        EXPECT_EQ(choose_transport(h, ranked, active, policy), 1u) << i;
    }
    h[0].on_probe(std::nullopt, policy);  // a relapse restarts the count
    h[0].on_probe(microseconds(1'000), policy);
    h[0].on_probe(microseconds(1'000), policy);
    EXPECT_EQ(choose_transport(h, ranked, active, policy), 1u);
    h[0].on_probe(microseconds(1'000), policy);
    EXPECT_EQ(choose_transport(h, ranked, active, policy), 0u);
}

TEST(TransportHealth, ASwitchedPreferenceIsReturnedTo) {
    auto h = lanes(3);
    const auto ranked = rank_transports(3, 2);
    for (int i = 0; i < 3; ++i) h[2].on_probe(microseconds(1'000), policy);
    EXPECT_EQ(choose_transport(h, ranked, 0, policy), 2u);
    // A lower-ranked healthy transport never displaces a healthy active one.
    for (int i = 0; i < 5; ++i) h[1].on_probe(microseconds(1'000), policy);
    EXPECT_EQ(choose_transport(h, rank_transports(3, 0), 0, policy), 0u);
}

}  // namespace
}  // namespace tunnel::link
