#include "relay/connection_gate.hpp"

#include <gtest/gtest.h>

namespace tunnel::relay {
namespace {

TEST(ConnectionGate, CapsTotalPerSourceAndUnauthenticated) {
    connection_gate gate({5, 3, 4});
    std::vector<connection_gate::ticket> held;
    for (int i = 0; i < 3; ++i) {
        auto t = gate.admit("10.0.0.1");
        ASSERT_TRUE(t);
        held.push_back(std::move(*t));
    }
    auto t = gate.admit("10.0.0.1");
    ASSERT_FALSE(t);
    EXPECT_EQ(t.error(), gate_refusal::per_source);
    EXPECT_EQ(gate.from("10.0.0.1"), 3u);

    auto other = gate.admit("10.0.0.2");
    ASSERT_TRUE(other);
    held.push_back(std::move(*other));
    // Four unauthenticated: the budget is full even though the total is not.
    t = gate.admit("10.0.0.3");
    ASSERT_FALSE(t);
    EXPECT_EQ(t.error(), gate_refusal::unauthenticated);
    held[0].authenticated();
    held[0].authenticated();  // idempotent
    EXPECT_EQ(gate.unauthenticated(), 3u);
    t = gate.admit("10.0.0.3");
    ASSERT_TRUE(t);
    held.push_back(std::move(*t));
    EXPECT_EQ(gate.open(), 5u);
    t = gate.admit("10.0.0.4");
    ASSERT_FALSE(t);
    EXPECT_EQ(t.error(), gate_refusal::connections);
    EXPECT_EQ(to_string(t.error()), "max_connections");
}

TEST(ConnectionGate, TicketsGiveTheirPlaceBack) {
    connection_gate gate({10, 2, 10});
    {
        auto a = gate.admit("s");
        auto b = gate.admit("s");
        ASSERT_TRUE(a && b);
        b->authenticated();
        EXPECT_FALSE(gate.admit("s"));
        connection_gate::ticket moved = std::move(*a);  // the move carries the place
        EXPECT_EQ(gate.open(), 2u);
    }
    EXPECT_EQ(gate.open(), 0u);
    EXPECT_EQ(gate.unauthenticated(), 0u);
    EXPECT_EQ(gate.from("s"), 0u);
    EXPECT_TRUE(gate.admit("s"));
}

TEST(ConnectionGate, SourcesAreAddressesAndIpv6Slash64s) {
    EXPECT_EQ(source_key(asio::ip::make_address("192.0.2.7")), "192.0.2.7");
    EXPECT_EQ(source_key(asio::ip::make_address("0.0.0.0")), "0.0.0.0");
    EXPECT_EQ(source_key(asio::ip::make_address("10.200.3.255")), "10.200.3.255");
    EXPECT_EQ(source_key(asio::ip::make_address("100.9.10.199")), "100.9.10.199");
    EXPECT_EQ(source_key(asio::ip::make_address("::ffff:192.0.2.7")), "192.0.2.7");
    EXPECT_EQ(source_key(asio::ip::make_address("2001:db8:1:2:3:4:5:6")), "2001:db8:1:2::/64");
    EXPECT_EQ(source_key(asio::ip::make_address("2001:db8:1:2:ffff::1")), "2001:db8:1:2::/64");
}

TEST(ConnectionGate, AutoCapsFitUnderTheDescriptorLimit) {
    limits_config l;
    std::vector<std::string> warnings;
    auto caps = resolve_connection_caps(l, 1024, warnings);
    EXPECT_EQ(caps.max_connections, (1024u - 64) * 3 / 4);
    EXPECT_EQ(caps.max_unauthenticated, caps.max_connections / 2);
    EXPECT_EQ(caps.max_per_source, 256u);
    EXPECT_TRUE(warnings.empty());

    l.max_connections = 5000;  // set by hand above the limit: kept, with a warning
    l.max_unauthenticated = 100;
    caps = resolve_connection_caps(l, 1024, warnings);
    EXPECT_EQ(caps.max_connections, 5000u);
    EXPECT_EQ(caps.max_unauthenticated, 100u);
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("EMFILE"), std::string::npos) << warnings[0];
}

}  // namespace
}  // namespace tunnel::relay
