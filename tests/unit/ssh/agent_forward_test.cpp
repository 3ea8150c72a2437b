// ForwardAgent and -A/-a: how they are read (ssh_config, OpenSSH's rules)
// and which agent socket a connection would forward.
#include "ssh/agent_forward_config.hpp"

#include <map>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ssh/destination.hpp"
#include "ssh/ssh_config.hpp"

namespace tunnel::ssh {
namespace {

using ::testing::HasSubstr;

resolve_context agent_test_context() {
    resolve_context ctx;
    ctx.home = "/home/alice";
    ctx.local_user = "alice";
    ctx.local_hostname = "laptop";
    ctx.getenv = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
    return ctx;
}

ssh_config parse_agent_config(std::string_view text) {
    auto cfg = ssh_config::parse(text, "test_config", agent_test_context());
    EXPECT_TRUE(cfg.has_value()) << cfg.error().message;
    return cfg ? std::move(*cfg) : ssh_config{};
}

std::optional<std::string> forward_agent_of(std::string_view text, std::string_view host = "h") {
    auto hc = parse_agent_config(text).resolve(host);
    EXPECT_TRUE(hc.has_value()) << hc.error().message;
    return hc ? hc->forward_agent : std::nullopt;
}

// The agent socket spec a connection to `target` forwards.
std::optional<std::string> forwarded(std::string_view config_text, std::optional<bool> flag,
                                     std::string_view target = "h") {
    auto cfg = parse_agent_config(config_text);
    client_flags flags;
    flags.forward_agent = flag;
    auto o = resolve_destination(cfg, target, flags);
    EXPECT_TRUE(o.has_value()) << o.error().message;
    return o ? o->forward_agent : std::nullopt;
}

TEST(ForwardAgentValue, ParsedAsOpenSsh) {
    EXPECT_EQ(*parse_forward_agent("yes"), std::optional<std::string>("yes"));
    EXPECT_EQ(*parse_forward_agent("True"), std::optional<std::string>("yes"));
    EXPECT_EQ(*parse_forward_agent("no"), std::nullopt);
    EXPECT_EQ(*parse_forward_agent("FALSE"), std::nullopt);
    EXPECT_EQ(*parse_forward_agent("$SSH_AUTH_SOCK"), std::optional<std::string>("$SSH_AUTH_SOCK"));
    EXPECT_EQ(*parse_forward_agent("${MY_AGENT}"), std::optional<std::string>("${MY_AGENT}"));
    EXPECT_EQ(*parse_forward_agent("~/.ssh/agent.sock"),
              std::optional<std::string>("~/.ssh/agent.sock"));
    for (const char* bad : {"", "$", "${}", "$1X", "$A-B", "${A"}) {
        auto r = parse_forward_agent(bad);
        EXPECT_FALSE(r.has_value()) << bad;
    }
    EXPECT_THAT(parse_forward_agent("$1X").error().message,
                HasSubstr("not an environment variable name"));
}

TEST(ForwardAgentConfig, OffByDefaultAndFirstValueWins) {
    EXPECT_EQ(forward_agent_of("Host other\n  ForwardAgent yes\n"), std::nullopt);
    EXPECT_EQ(forward_agent_of("Host h\n  ForwardAgent yes\nHost *\n  ForwardAgent no\n"), "yes");
    // `no` is a value obtained too: a later yes does not turn it on.
    EXPECT_EQ(forward_agent_of("Host h\n  ForwardAgent no\nHost *\n  ForwardAgent yes\n"),
              std::nullopt);
}

TEST(ForwardAgentConfig, PathsAreExpandedEnvironmentNamesKept) {
    EXPECT_EQ(forward_agent_of("ForwardAgent ~/.ssh/%h.sock\n"), "/home/alice/.ssh/h.sock");
    EXPECT_EQ(forward_agent_of("ForwardAgent $OTHER_AGENT\n"), "$OTHER_AGENT");
}

TEST(ForwardAgentConfig, BadValuesNameTheLine) {
    auto cfg =
        ssh_config::parse("Host x\n  ForwardAgent $9\n", "test_config", agent_test_context());
    ASSERT_FALSE(cfg.has_value());
    EXPECT_THAT(cfg.error().message, HasSubstr("test_config:2"));
    EXPECT_THAT(cfg.error().message, HasSubstr("ForwardAgent"));
    ssh_config o;
    EXPECT_FALSE(o.add_override("ForwardAgent=a b"));
    EXPECT_TRUE(o.add_override("ForwardAgent=yes"));
}

TEST(ForwardAgentDestination, NeverWithoutBeingAsked) {
    EXPECT_EQ(forwarded("", std::nullopt), std::nullopt);
    EXPECT_EQ(forwarded("ForwardAgent no\n", std::nullopt), std::nullopt);
}

TEST(ForwardAgentDestination, YesForwardsTheLoginAgent) {
    EXPECT_EQ(forwarded("ForwardAgent yes\n", std::nullopt), "$SSH_AUTH_SOCK");
    EXPECT_EQ(forwarded("", true), "$SSH_AUTH_SOCK");
    EXPECT_EQ(forwarded("IdentityAgent ~/a.sock\nForwardAgent yes\n", std::nullopt),
              "/home/alice/a.sock");
    EXPECT_EQ(forwarded("IdentityAgent $OTHER\n", true), "$OTHER");
    EXPECT_EQ(forwarded("IdentityAgent SSH_AUTH_SOCK\n", true), "$SSH_AUTH_SOCK");
    // IdentityAgent none: asked for, but there is no agent (reported at use).
    EXPECT_EQ(forwarded("IdentityAgent none\n", true), "");
}

TEST(ForwardAgentDestination, FlagsBeatTheConfigButKeepItsPath) {
    EXPECT_EQ(forwarded("ForwardAgent no\n", true), "$SSH_AUTH_SOCK");
    EXPECT_EQ(forwarded("ForwardAgent yes\n", false), std::nullopt);
    EXPECT_EQ(forwarded("ForwardAgent /run/agent.sock\n", true), "/run/agent.sock");
    EXPECT_EQ(forwarded("ForwardAgent /run/agent.sock\n", false), std::nullopt);
}

TEST(ForwardAgentDestination, JumpHostsAreNotAskedByTheFlag) {
    auto cfg = parse_agent_config("Host h\n  ProxyJump bastion\n");
    client_flags flags;
    flags.forward_agent = true;
    auto o = resolve_destination(cfg, "h", flags);
    ASSERT_TRUE(o) << o.error().message;
    EXPECT_EQ(o->forward_agent, "$SSH_AUTH_SOCK");
    ASSERT_EQ(o->jumps.size(), 1u);
    EXPECT_EQ(o->jumps[0].forward_agent, std::nullopt);
}

TEST(AgentSocket, MissingAgentsAreExplained) {
    ::unsetenv("TUNNEL_TEST_NO_SUCH_AGENT");
    auto unset = agent_socket_to_forward("$TUNNEL_TEST_NO_SUCH_AGENT");
    ASSERT_FALSE(unset);
    EXPECT_EQ(unset.error().code, core::errc::not_found);
    EXPECT_THAT(unset.error().message, HasSubstr("$TUNNEL_TEST_NO_SUCH_AGENT is not set"));
    auto none = agent_socket_to_forward("");
    ASSERT_FALSE(none);
    EXPECT_THAT(none.error().message, HasSubstr("IdentityAgent none"));
    auto missing = agent_socket_to_forward("/nonexistent/agent.sock");
    ASSERT_FALSE(missing);
    EXPECT_THAT(missing.error().message, HasSubstr("/nonexistent/agent.sock is not there"));
    auto not_socket = agent_socket_to_forward("/dev/null");
    ASSERT_FALSE(not_socket);
    EXPECT_THAT(not_socket.error().message, HasSubstr("is not a socket"));
    ::setenv("TUNNEL_TEST_AGENT", "/dev/null", 1);
    EXPECT_THAT(agent_socket_to_forward("${TUNNEL_TEST_AGENT}").error().message,
                HasSubstr("/dev/null is not a socket"));
    ::unsetenv("TUNNEL_TEST_AGENT");
}

}  // namespace
}  // namespace tunnel::ssh
