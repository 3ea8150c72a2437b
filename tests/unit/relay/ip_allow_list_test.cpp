// CIDR allow lists of the `ip` visitor access mode: strict parsing (hostile
// and sloppy input refused with a useful message), IPv4, IPv6 and
// IPv4-mapped IPv6 on both sides.
#include "relay/ip_allow_list.hpp"

#include <gtest/gtest.h>

namespace tunnel::relay {
namespace {

ip_address addr(std::string_view text) {
    auto a = parse_ip_address(text);
    EXPECT_TRUE(a) << text << ": " << a.error().message;
    return a.value_or(ip_address{});
}

TEST(IpAddress, ParsesV4V6AndMapsV4InV6) {
    EXPECT_EQ(addr("10.1.2.3").to_string(), "10.1.2.3");
    EXPECT_FALSE(addr("10.1.2.3").v6);
    EXPECT_EQ(addr("2001:db8::1").to_string(), "2001:db8::1");
    EXPECT_TRUE(addr("2001:DB8::1").v6);
    EXPECT_EQ(addr("::ffff:10.1.2.3"),
              addr("10.1.2.3"));  // as asio prints a v4 peer on a v6 socket
    EXPECT_EQ(addr("[::1]").to_string(), "::1");
    EXPECT_TRUE(addr("::ffff:0:10.1.2.3").v6);  // SIIT form is not the mapped form
}

TEST(IpAddress, RefusesEverythingElse) {
    for (std::string_view bad : std::vector<std::string_view>{"",
                                                              "1.2.3",
                                                              "1.2.3.4.5",
                                                              "256.1.1.1",
                                                              "01.2.3.4",
                                                              "1.2.3.04",
                                                              " 1.2.3.4",
                                                              "1.2.3.4 ",
                                                              "0x7f.0.0.1",
                                                              "127.1",
                                                              "1.2.3.-4",
                                                              "fe80::1%eth0",
                                                              ":::1",
                                                              "1::2::3",
                                                              "g::1",
                                                              "localhost",
                                                              "1.2.3.4/32",
                                                              "[1.2.3.4",
                                                              "2001:db8::1\n",
                                                              std::string_view("1.2.3.4\0", 8),
                                                              "::ffff:1.2.3.4.5"}) {
        auto a = parse_ip_address(bad);
        EXPECT_FALSE(a) << "accepted '" << bad << "'";
        if (!a) {
            EXPECT_NE(a.error().message.find("not an IP address"), std::string::npos);
        }
    }
    auto zone = parse_ip_address("fe80::1%eth0");
    ASSERT_FALSE(zone);
    EXPECT_NE(zone.error().message.find("zone"), std::string::npos) << zone.error().message;
}

TEST(IpNetwork, ParsesAndMatches) {
    auto n = parse_ip_network("10.0.0.0/8");
    ASSERT_TRUE(n) << n.error().message;
    EXPECT_TRUE(n->contains(addr("10.255.1.2")));
    EXPECT_FALSE(n->contains(addr("11.0.0.1")));
    EXPECT_TRUE(n->contains(addr("::ffff:10.9.9.9")));
    EXPECT_FALSE(n->contains(addr("::a00:1")));  // a v6 address that is not mapped

    auto odd = parse_ip_network("192.168.4.0/22");
    ASSERT_TRUE(odd) << odd.error().message;
    EXPECT_TRUE(odd->contains(addr("192.168.7.255")));
    EXPECT_FALSE(odd->contains(addr("192.168.8.0")));

    auto v6 = parse_ip_network("2001:db8::/32");
    ASSERT_TRUE(v6) << v6.error().message;
    EXPECT_TRUE(v6->contains(addr("2001:db8:ffff::1")));
    EXPECT_FALSE(v6->contains(addr("2001:db9::1")));
    EXPECT_FALSE(v6->contains(addr("10.0.0.1")));

    auto host = parse_ip_network("203.0.113.7");
    ASSERT_TRUE(host);
    EXPECT_EQ(host->prefix, 32u);
    EXPECT_TRUE(host->contains(addr("203.0.113.7")));
    EXPECT_FALSE(host->contains(addr("203.0.113.8")));

    auto everyone = parse_ip_network("0.0.0.0/0");
    ASSERT_TRUE(everyone);
    EXPECT_TRUE(everyone->contains(addr("8.8.8.8")));
    EXPECT_FALSE(everyone->contains(addr("::1")));  // IPv4 only

    auto mapped = parse_ip_network("::ffff:10.0.0.0/104");
    ASSERT_TRUE(mapped) << mapped.error().message;
    EXPECT_EQ(mapped->to_string(), "10.0.0.0/8");
    EXPECT_TRUE(mapped->contains(addr("10.1.1.1")));
}

TEST(IpNetwork, RefusesSloppyAndHostileInput) {
    for (std::string_view bad : std::vector<std::string_view>{
             "10.0.0.0/33", "10.0.0.0/", "/8", "10.0.0.0/-1", "10.0.0.0/08", "10.0.0.0/8/8", "10/8",
             "10.0.0.0/ 8", "10.0.0.0/8 ", "2001:db8::/129", "2001:db8::/1000",
             "::ffff:10.0.0.0/95", "10.0.0.0/4294967304", "10.0.0.0/0x8", "*", "any", "10.0.0.*"})
        EXPECT_FALSE(parse_ip_network(bad)) << "accepted '" << bad << "'";
    auto host_bits = parse_ip_network("10.1.2.3/8");
    ASSERT_FALSE(host_bits);
    EXPECT_NE(host_bits.error().message.find("did you mean 10.0.0.0/8"), std::string::npos)
        << host_bits.error().message;
    auto v6_bits = parse_ip_network("2001:db8::1/32");
    ASSERT_FALSE(v6_bits);
    EXPECT_NE(v6_bits.error().message.find("2001:db8::/32"), std::string::npos);
}

TEST(IpAllowList, ParsesListsAndReportsEveryProblem) {
    auto l = ip_allow_list::parse_list("10.0.0.0/8, 2001:db8::/32,192.168.1.1");
    ASSERT_TRUE(l) << l.error().message;
    EXPECT_EQ(l->networks().size(), 3u);
    EXPECT_EQ(l->to_string(), "10.0.0.0/8,2001:db8::/32,192.168.1.1/32");
    EXPECT_TRUE(l->allows(addr("::ffff:10.2.3.4")));
    EXPECT_TRUE(l->allows(addr("192.168.1.1")));
    EXPECT_FALSE(l->allows(addr("192.168.1.2")));
    EXPECT_FALSE(l->allows(addr("::1")));

    auto round = ip_allow_list::parse_list(l->to_string());
    ASSERT_TRUE(round);
    EXPECT_EQ(*round, *l);

    auto many = ip_allow_list::parse({"10.0.0.1/8", "bogus", "10.0.0.0/8"});
    ASSERT_FALSE(many);
    EXPECT_NE(many.error().message.find("10.0.0.1/8"), std::string::npos);
    EXPECT_NE(many.error().message.find("bogus"), std::string::npos);

    EXPECT_FALSE(ip_allow_list::parse({}));  // would refuse everyone: say so
    EXPECT_FALSE(ip_allow_list::parse_list(""));
    EXPECT_FALSE(ip_allow_list::parse_list("10.0.0.0/8,,11.0.0.0/8"));
    EXPECT_FALSE(ip_allow_list::parse_list("10.0.0.0/8,"));
    std::string huge;
    for (int i = 0; i < 300; ++i) huge += "10.0.0.0/8,";
    huge += "10.0.0.0/8";
    EXPECT_FALSE(ip_allow_list::parse_list(huge));
}

}  // namespace
}  // namespace tunnel::relay
