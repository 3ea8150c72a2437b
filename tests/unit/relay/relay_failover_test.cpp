// tunnel connect --relay (relay/relay_failover.hpp): which relay each attempt
// goes to, names with several addresses, and the refusal of bad values.
#include "relay/relay_failover.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace tunnel::relay {
namespace {

std::vector<transport::ws_url> three() {
    auto r =
        parse_relays("ws://127.0.0.1:7001/v1/tunnel",
                     {"ws://127.0.0.1:7002/v1/tunnel", "ws://127.0.0.1:7003/v1/tunnel"}, false);
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : std::vector<transport::ws_url>{};
}

// The port of the relay the next attempt goes to.
std::uint16_t next(relay_failover& f) {
    ssh::connect_options t;
    f.before_connect(t);
    EXPECT_TRUE(static_cast<bool>(t.open_stream));
    return t.port;
}

struct failover_under_test {
    std::vector<relay_switch> switches;
    relay_failover f;
    failover_under_test()
        : f(three(), failover_options{
                         .on_switch = [this](const relay_switch& s) { switches.push_back(s); }}) {
        f.set_openers(std::vector<ssh::stream_opener>(
            3,
            [](asio::any_io_executor, std::chrono::steady_clock::time_point)
                -> asio::awaitable<core::result<ssh::byte_stream>> {
                co_return core::fail(core::errc::connection_failed, "not used");
            }));
    }
};

TEST(RelayFailover, StartsOnTheFirstAndFailsOverInOrder) {
    failover_under_test u;
    EXPECT_EQ(next(u.f), 7001);
    u.f.attached(0);
    EXPECT_TRUE(u.switches.empty());
    // Lost: the same relay once more first (a restart, a renewal), then the next.
    EXPECT_EQ(next(u.f), 7001);
    EXPECT_EQ(next(u.f), 7002);
    EXPECT_EQ(next(u.f), 7003);
    u.f.attached(2);
    ASSERT_EQ(u.switches.size(), 1u);
    EXPECT_EQ(u.switches[0].from, 0u);
    EXPECT_EQ(u.switches[0].to, 2u);
    EXPECT_EQ(u.switches[0].reason, "failover");
    EXPECT_EQ(u.switches[0].to_url, "ws://127.0.0.1:7003/v1/tunnel");
    // The third lost and down: round to the first.
    EXPECT_EQ(next(u.f), 7003);
    EXPECT_EQ(next(u.f), 7001);
    u.f.attached(0);
    ASSERT_EQ(u.switches.size(), 2u);
    EXPECT_EQ(u.switches[1].reason, "failover");
    EXPECT_EQ(u.f.current(), 0u);
}

TEST(RelayFailover, EachRelayIsCheckedUnderItsOwnNameInKnownHosts) {
    auto r =
        parse_relays("ws://localhost:7001/v1/tunnel", {"ws://127.0.0.2:7002/v1/tunnel"}, false);
    ASSERT_TRUE(r) << r.error().message;
    relay_failover f(*r, {});
    f.set_openers(std::vector<ssh::stream_opener>(
        2,
        [](asio::any_io_executor, std::chrono::steady_clock::time_point)
            -> asio::awaitable<core::result<ssh::byte_stream>> {
            co_return core::fail(core::errc::connection_failed, "not used");
        }));
    ssh::connect_options t;
    f.before_connect(t);
    EXPECT_EQ(t.host, "localhost");
    f.before_connect(t);
    EXPECT_EQ(t.host, "127.0.0.2");
    EXPECT_EQ(t.port, 7002);
}

TEST(RelayFailover, ANameWithSeveralAddressesCountsAsSeveralRelaysInResolverOrder) {
    auto r =
        parse_relays("wss://relays.example.com/v1/tunnel",
                     {"wss://10.0.0.9/v1/tunnel", "wss://single.example.com/v1/tunnel"}, false);
    ASSERT_TRUE(r) << r.error().message;
    std::vector<std::string> asked;
    auto resolve = [&](const std::string& host, std::uint16_t port) {
        asked.push_back(host);
        EXPECT_EQ(port, 443);
        if (host == "relays.example.com")
            return std::vector<std::string>{"192.0.2.7", "2001:db8::7", "192.0.2.8"};
        return std::vector<std::string>{"192.0.2.20"};
    };
    auto all = expand_addresses(*r, resolve);
    ASSERT_EQ(all.size(), 5u);
    EXPECT_EQ(all[0].address, "192.0.2.7");
    EXPECT_EQ(all[1].address, "2001:db8::7");
    EXPECT_EQ(all[2].address, "192.0.2.8");
    for (int i = 0; i < 3; ++i) EXPECT_EQ(all[i].host, "relays.example.com");  // SNI, Host
    EXPECT_EQ(all[3].host, "10.0.0.9");  // an IP literal is not resolved
    EXPECT_EQ(all[3].address, "");
    EXPECT_EQ(all[4].address, "");  // one address: resolved at each attach, as before
    EXPECT_EQ(asked, (std::vector<std::string>{"relays.example.com", "single.example.com"}));
    EXPECT_EQ(describe_relay(all[1]), "wss://relays.example.com/v1/tunnel (address 2001:db8::7)");
}

TEST(RelayFailover, BadRelayValuesAreRefusedWithTheFix) {
    const std::string url = "ws://127.0.0.1:7001/v1/tunnel";
    auto dup = parse_relays(url, {"ws://127.0.0.1:7001/v1/tunnel"}, false);
    ASSERT_FALSE(dup);
    EXPECT_NE(dup.error().message.find("already in the list"), std::string::npos)
        << dup.error().message;
    auto scheme = parse_relays(url, {"http://127.0.0.1:7002/v1/tunnel"}, false);
    ASSERT_FALSE(scheme);
    EXPECT_NE(scheme.error().message.find("--relay http://127.0.0.1:7002"), std::string::npos)
        << scheme.error().message;
    auto plain = parse_relays(url, {"ws://relay2.example.com/v1/tunnel"}, false);
    ASSERT_FALSE(plain);
    EXPECT_NE(plain.error().message.find("--relay ws://relay2.example.com"), std::string::npos)
        << plain.error().message;
    EXPECT_TRUE(parse_relays(url, {"ws://relay2.example.com/v1/tunnel"}, true));
    auto empty = parse_relays(url, {""}, false);
    ASSERT_FALSE(empty);
    EXPECT_NE(empty.error().message.find("give a relay attach URL"), std::string::npos);
    std::vector<std::string> many;
    for (int i = 0; i < 16; ++i)
        many.push_back(fmt::format("ws://127.0.0.1:{}/v1/tunnel", 8000 + i));
    auto too_many = parse_relays(url, many, false);
    ASSERT_FALSE(too_many);
    EXPECT_NE(too_many.error().message.find("at most 16"), std::string::npos)
        << too_many.error().message;
}

}  // namespace
}  // namespace tunnel::relay
