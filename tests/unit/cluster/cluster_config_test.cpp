#include "relay/cluster_config.hpp"

#include <gtest/gtest.h>

#include "relay/relay_config.hpp"

namespace tunnel::relay {
namespace {

constexpr const char* base = R"(listen: 127.0.0.1:8443
allow_plaintext: true
host_key_file: /var/lib/tunnel/host_ed25519
jwt:
  secret_file: /etc/tunnel/jwt.secret
)";

core::result<relay_config> with_cluster(const std::string& section) {
    return parse_relay_config(std::string(base) + section, "relay.yaml");
}

TEST(ClusterConfig, ARelayWithoutClusterNeedsNoRedis) {
    auto c = parse_relay_config(base, "relay.yaml");
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_FALSE(c->cluster);
}

TEST(ClusterConfig, ReadsEveryKey) {
    auto c = with_cluster(R"(cluster:
  redis: redis://:pw@127.0.0.1:6379/1
  node: relay-a
  internal_listen: 127.0.0.1:7443
  secret_file: /etc/tunnel/cluster.secret
)");
    ASSERT_TRUE(c) << c.error().message;
    ASSERT_TRUE(c->cluster);
    EXPECT_EQ(c->cluster->redis.endpoints.at(0).port, 6379);
    EXPECT_EQ(c->cluster->redis.db, 1);
    EXPECT_EQ(c->cluster->node, "relay-a");
    EXPECT_EQ(c->cluster->internal_address(), "127.0.0.1:7443");
    EXPECT_EQ(c->cluster->secret_file, "/etc/tunnel/cluster.secret");
    bool shown = false;
    for (const auto& line : describe(*c)) {
        EXPECT_EQ(line.find("pw@"), std::string::npos) << line;
        if (line == "cluster.redis: redis://:***@127.0.0.1:6379/1") shown = true;
    }
    EXPECT_TRUE(shown);
}

TEST(ClusterConfig, TakesSentinelAddresses) {
    auto c = with_cluster(R"(cluster:
  redis: redis-sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster
  node: b
  internal_listen: "[fd00::5]:7443"
  secret_file: s
)");
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->cluster->redis.master, "mymaster");
    EXPECT_EQ(c->cluster->internal_address(), "[fd00::5]:7443");
}

TEST(ClusterConfig, ReportsEveryProblemWithItsPathAndLine) {
    auto c = with_cluster(R"(cluster:
  redis: rediss://:topsecret@127.0.0.1:6379
  node: Relay_A
  internal_listen: 0.0.0.0:7443
  secret_file: ""
  shards: 3
)");
    ASSERT_FALSE(c);
    const auto& m = c.error().message;
    EXPECT_NE(m.find("cluster.redis: "), std::string::npos) << m;
    EXPECT_NE(m.find("TLS"), std::string::npos) << m;
    EXPECT_EQ(m.find("topsecret"), std::string::npos) << m;
    EXPECT_NE(m.find("cluster.node: \"Relay_A\" is not a node name"), std::string::npos) << m;
    EXPECT_NE(m.find("(line 8)"), std::string::npos) << m;  // node:
    EXPECT_NE(m.find("cluster.internal_listen: \"0.0.0.0:7443\""), std::string::npos) << m;
    EXPECT_NE(m.find("cluster.secret_file: must not be empty"), std::string::npos) << m;
    EXPECT_NE(m.find("cluster.shards: unknown key"), std::string::npos) << m;
}

TEST(ClusterConfig, RequiresEveryKey) {
    auto c = with_cluster("cluster:\n  node: relay-a\n");
    ASSERT_FALSE(c);
    const auto& m = c.error().message;
    EXPECT_NE(m.find("cluster.redis: is required"), std::string::npos) << m;
    EXPECT_NE(m.find("cluster.internal_listen: is required"), std::string::npos) << m;
    EXPECT_NE(m.find("cluster.secret_file: is required"), std::string::npos) << m;
    auto empty = with_cluster("cluster:\n");
    ASSERT_FALSE(empty);
    EXPECT_NE(empty.error().message.find("cluster: is empty"), std::string::npos)
        << empty.error().message;
    auto bad_port = with_cluster(
        "cluster:\n  redis: redis://h:1\n  node: a\n  internal_listen: h:99999\n  secret_file: "
        "s\n");
    ASSERT_FALSE(bad_port);
    EXPECT_NE(bad_port.error().message.find("cluster.internal_listen"), std::string::npos);
}

TEST(ClusterConfig, AdvertiseIsWhatTheOthersAreToldWhenListeningOnEveryAddress) {
    auto c = with_cluster(R"(cluster:
  redis: redis://127.0.0.1:6379
  node: relay-a
  internal_listen: 0.0.0.0:7443
  advertise: 10.1.2.3:7443
  secret_file: s
)");
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->cluster->internal_host, "0.0.0.0");
    EXPECT_EQ(c->cluster->internal_port, 7443);
    EXPECT_EQ(c->cluster->internal_address(), "10.1.2.3:7443");
    auto v6 = with_cluster(
        "cluster:\n  redis: redis://h:1\n  node: a\n  internal_listen: \"[::]:7443\"\n  "
        "advertise: \"[fd00::7]:7000\"\n  secret_file: s\n");
    ASSERT_TRUE(v6) << v6.error().message;
    EXPECT_EQ(v6->cluster->internal_address(), "[fd00::7]:7000");
    // Without advertise the listen address is announced: a specific one.
    auto same = with_cluster(
        "cluster:\n  redis: redis://h:1\n  node: a\n  internal_listen: 10.0.0.5:7443\n  "
        "secret_file: s\n");
    ASSERT_TRUE(same) << same.error().message;
    EXPECT_EQ(same->cluster->internal_address(), "10.0.0.5:7443");
    bool described = false;
    for (const auto& line : describe(*c))
        if (line == "cluster.advertise: 10.1.2.3:7443") described = true;
    EXPECT_TRUE(described);
}

TEST(ClusterConfig, AdvertiseRefusesAnAddressNobodyCanReach) {
    for (const char* bad : {"0.0.0.0:7443", "\"[::]:7443\"", "10.0.0.1", "h:0", "a b:1"}) {
        auto c = with_cluster(
            std::string("cluster:\n  redis: redis://h:1\n  node: a\n  internal_listen: "
                        "0.0.0.0:7443\n  advertise: ") +
            bad + "\n  secret_file: s\n");
        ASSERT_FALSE(c) << bad;
        EXPECT_NE(c.error().message.find("cluster.advertise: "), std::string::npos)
            << c.error().message;
        EXPECT_NE(c.error().message.find("never 0.0.0.0"), std::string::npos) << c.error().message;
    }
}

}  // namespace
}  // namespace tunnel::relay
