// The relay config's `usage:` section (usage/usage_config.hpp through
// relay::parse_relay_config): absent is off; every mistake named with its path.
#include <gtest/gtest.h>

#include "relay/relay_config.hpp"

namespace tunnel::usage {
namespace {

using namespace std::chrono_literals;

const std::string base = R"(
listen: 127.0.0.1:8443
host_key_file: /var/lib/tunnel/host_ed25519
jwt:
  secret_file: /etc/tunnel/jwt.secret
)";

TEST(UsageConfig, AbsentMeansOff) {
    auto c = relay::parse_relay_config(base, "relay.yaml");
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_FALSE(c->usage);
}

TEST(UsageConfig, ReadsEveryKey) {
    auto c = relay::parse_relay_config(base +
                                           "usage:\n  database: /var/lib/tunnel/usage.db\n  "
                                           "flush_interval: 2s\n  retention: 30d\n",
                                       "relay.yaml");
    ASSERT_TRUE(c) << c.error().message;
    ASSERT_TRUE(c->usage);
    EXPECT_EQ(c->usage->database, "/var/lib/tunnel/usage.db");
    EXPECT_EQ(c->usage->flush_interval, 2s);
    EXPECT_EQ(c->usage->retention, std::chrono::hours(30 * 24));
    auto d = relay::parse_relay_config(base + "usage: {database: u.db}\n", "relay.yaml");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->usage->flush_interval, 10s);
    EXPECT_EQ(d->usage->retention, std::chrono::hours(90 * 24));
}

TEST(UsageConfig, InAClusterTheDatabaseIsNotNeeded) {
    const std::string cluster =
        "cluster:\n  redis: redis://127.0.0.1:6379\n  node: relay-a\n  internal_listen: "
        "127.0.0.1:7443\n  secret_file: s\n";
    auto c =
        relay::parse_relay_config(base + cluster + "usage: {flush_interval: 5s}\n", "relay.yaml");
    ASSERT_TRUE(c) << c.error().message;
    ASSERT_TRUE(c->usage);
    EXPECT_TRUE(c->usage->in_cluster);
    EXPECT_TRUE(c->usage->database.empty());
    EXPECT_EQ(c->usage->flush_interval, 5s);
    bool described = false;
    for (const auto& line : relay::describe(*c))
        if (line.starts_with("usage.database: (not used: usage is kept in the cluster's Redis)"))
            described = true;
    EXPECT_TRUE(described);
    // Without cluster: the database is still required.
    auto single = relay::parse_relay_config(base + "usage: {flush_interval: 5s}\n", "relay.yaml");
    ASSERT_FALSE(single);
    EXPECT_NE(single.error().message.find("usage.database: is required"), std::string::npos);
}

TEST(UsageConfig, MistakesAreNamedWithTheirPathAndHowToFixThem) {
    const std::pair<const char*, const char*> cases[] = {
        {"usage: {flush_interval: 5s}", "usage.database: is required"},
        {"usage: {database: ''}", "usage.database: must not be empty"},
        {"usage: {database: u.db, flush_interval: 10ms}",
         "usage.flush_interval: must be from 50ms"},
        {"usage: {database: u.db, flush_interval: 2h}", "usage.flush_interval: must be from"},
        {"usage: {database: u.db, retention: 2h}", "usage.retention: \"2h\": too short"},
        {"usage: {database: u.db, retention: forever}", "usage.retention:"},
        {"usage: {database: u.db, redis: localhost}", "usage.redis"},
        {"usage: u.db", "usage"},
    };
    for (const auto& [yaml, expect] : cases) {
        auto c = relay::parse_relay_config(base + yaml + "\n", "relay.yaml");
        ASSERT_FALSE(c) << yaml;
        EXPECT_NE(c.error().message.find(expect), std::string::npos) << yaml << "\n"
                                                                     << c.error().message;
    }
}

}  // namespace
}  // namespace tunnel::usage
