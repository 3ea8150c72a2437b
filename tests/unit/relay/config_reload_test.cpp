// config_reload's pure part: two configs diffed into the keys a reload
// applies and the keys that need a restart.
#include "relay/config_reload.hpp"

#include <algorithm>

#include <gtest/gtest.h>

namespace tunnel::relay {
namespace {

constexpr const char* reload_base = R"(
listen: 127.0.0.1:8443
allow_plaintext: true
admin_listen: 127.0.0.1:9090
host_key_file: /var/lib/tunnel/host_ed25519
jwt:
  secret_file: /etc/tunnel/jwt.secret
limits:
  route_rps: 20
)";

relay_config parse_reload(const std::string& extra) {
    auto c = parse_relay_config(std::string(reload_base) + extra, "test.yaml");
    EXPECT_TRUE(c) << c.error().message;
    return c ? *c : relay_config{};
}

std::vector<std::string> change_keys(const std::vector<config_change>& changes) {
    std::vector<std::string> out;
    for (const auto& c : changes) out.push_back(c.key);
    return out;
}

TEST(ConfigReload, TheSameConfigHasNoChanges) {
    auto plan = diff_configs(parse_reload(""), parse_reload(""));
    EXPECT_TRUE(plan.live.empty());
    EXPECT_TRUE(plan.restart.empty());
}

TEST(ConfigReload, LiveKeysAreSeparatedFromRestartOnlyOnes) {
    auto before = parse_reload("breaker:\n  failures: 5\n");
    auto after = parse_reload(
        "breaker:\n  failures: 9\nagent_forwarding:\n  tenants: [ops]\nworkers: 3\n"
        "shares:\n  max_per_tenant: 7\n");
    after.limits.route_rps = 200;
    after.jwt.audience = "relay";
    auto plan = diff_configs(before, after);
    auto live = change_keys(plan.live);
    std::sort(live.begin(), live.end());
    EXPECT_EQ(live, (std::vector<std::string>{"agent_forwarding.tenants", "breaker.failures",
                                              "jwt.audience", "limits.route_rps"}));
    EXPECT_EQ(change_keys(plan.restart),
              (std::vector<std::string>{"shares.max_per_tenant", "workers"}));
    const auto rps = std::find_if(plan.live.begin(), plan.live.end(),
                                  [](const auto& c) { return c.key == "limits.route_rps"; });
    ASSERT_NE(rps, plan.live.end());
    EXPECT_EQ(rps->before, "20");
    EXPECT_EQ(rps->after, "200");
}

TEST(ConfigReload, ListenersTlsAndStateFilesNeedARestart) {
    auto before = parse_reload("");
    auto after = before;
    after.listen.port = 9443;
    after.admin_listen.port = 9091;
    after.host_key_file = "/tmp/other";
    after.audit_log = "/var/log/tunnel/audit.jsonl";
    after.revocation.state_file = "/var/lib/tunnel/revoked.db";
    after.limits.max_connections = 10;
    auto plan = diff_configs(before, after);
    EXPECT_TRUE(plan.live.empty()) << describe(plan.live);
    for (const char* k : {"listen", "admin_listen", "host_key_file", "audit_log", "audit.keep",
                          "revocation.state_file", "limits.max_connections"}) {
        const auto ks = change_keys(plan.restart);
        EXPECT_NE(std::find(ks.begin(), ks.end(), k), ks.end()) << k << "\n"
                                                                << describe(plan.restart);
    }
}

TEST(ConfigReload, AddedAndRemovedKeysShowAsAbsent) {
    auto before = parse_reload("visitors:\n  names:\n    acme/web: {access: public}\n");
    auto after = parse_reload("visitors:\n  names:\n    acme/api: {access: public}\n");
    auto plan = diff_configs(before, after);
    EXPECT_TRUE(plan.restart.empty()) << describe(plan.restart);
    ASSERT_EQ(plan.live.size(), 2u) << describe(plan.live);
    const auto text = describe(plan.live);
    EXPECT_NE(text.find("visitors.names.acme/web: public -> (absent)"), std::string::npos) << text;
    EXPECT_NE(text.find("visitors.names.acme/api: (absent) -> public"), std::string::npos) << text;
}

TEST(ConfigReload, ReloadableKeys) {
    EXPECT_TRUE(reloadable_key("limits.route_rps"));
    EXPECT_TRUE(reloadable_key("jwt.secret_file"));
    EXPECT_TRUE(reloadable_key("visitors.names.acme/web"));
    EXPECT_TRUE(reloadable_key("queue.max_wait"));
    EXPECT_FALSE(reloadable_key("queue.max_requests"));
    EXPECT_FALSE(reloadable_key("limits.route_rps_extra"));
    EXPECT_FALSE(reloadable_key("jwt"));
    EXPECT_FALSE(reloadable_key("tls.cert_file"));
    EXPECT_FALSE(reloadable_key("usage.database"));
}

}  // namespace
}  // namespace tunnel::relay
