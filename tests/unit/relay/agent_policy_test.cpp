// agent_forwarding: in the relay config and the decision for each agent
// request a tunnel client sends (relay/agent_policy.hpp).
#include "relay/agent_policy.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "relay/relay_config.hpp"
#include "ssh/server_session.hpp"

namespace tunnel::relay {
namespace {

using ::testing::HasSubstr;

constexpr const char* base = R"(
listen: 127.0.0.1:8443
host_key_file: /var/lib/tunnel/host_ed25519
jwt:
  secret_file: /etc/tunnel/jwt.secret
)";

core::result<relay_config> parse(const std::string& extra) {
    return parse_relay_config(std::string(base) + extra, "relay.yaml");
}

TEST(AgentPolicyConfig, RefusedForEveryTenantByDefault) {
    auto c = parse("");
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_TRUE(c->agent_forwarding.tenants.empty());
    const auto d =
        decide_agent_request(c->agent_forwarding, "acme", ssh::agent_request::forwarding);
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.event, "agent_forwarding_refused");
    EXPECT_THAT(d.reason, HasSubstr("agent_forwarding.tenants"));
    bool described = false;
    for (const auto& line : describe(*c))
        if (line.rfind("agent_forwarding.tenants: (none", 0) == 0) described = true;
    EXPECT_TRUE(described);
}

TEST(AgentPolicyConfig, ListedTenantsAndGlobs) {
    auto c = parse("agent_forwarding:\n  tenants: [ops, build-*]\n");
    ASSERT_TRUE(c) << c.error().message;
    const auto& a = c->agent_forwarding;
    EXPECT_TRUE(decide_agent_request(a, "ops", ssh::agent_request::forwarding).allowed);
    EXPECT_TRUE(decide_agent_request(a, "build-7", ssh::agent_request::forwarding).allowed);
    EXPECT_FALSE(decide_agent_request(a, "opsx", ssh::agent_request::forwarding).allowed);
    EXPECT_FALSE(decide_agent_request(a, "acme", ssh::agent_request::forwarding).allowed);
    EXPECT_EQ(decide_agent_request(a, "ops", ssh::agent_request::forwarding).event,
              "agent_forwarding_allowed");
    EXPECT_EQ(describe(a), "agent_forwarding.tenants: ops, build-*");
}

TEST(AgentPolicyConfig, AgentChannelsFromClientsAreAlwaysRefused) {
    agent_forwarding_config a{{"*"}};
    const auto d = decide_agent_request(a, "ops", ssh::agent_request::channel_open);
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.event, "agent_forwarding_refused");
    EXPECT_THAT(d.reason, HasSubstr("only servers open those"));
}

TEST(AgentPolicyConfig, BadEntriesAreReportedWithTheirPath) {
    auto bad = parse("agent_forwarding:\n  tenants: [Ops, \"a b\"]\n");
    ASSERT_FALSE(bad);
    EXPECT_THAT(bad.error().message,
                HasSubstr("agent_forwarding.tenants: \"Ops\" is not a tenant"));
    EXPECT_THAT(bad.error().message, HasSubstr("\"a b\""));
    auto unknown = parse("agent_forwarding:\n  tenant: [ops]\n");
    ASSERT_FALSE(unknown);
    EXPECT_THAT(unknown.error().message, HasSubstr("agent_forwarding.tenant"));
    auto not_list = parse("agent_forwarding:\n  tenants: ops\n");
    EXPECT_FALSE(not_list);
}

}  // namespace
}  // namespace tunnel::relay
