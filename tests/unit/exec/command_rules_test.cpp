#include "exec/command_rules.hpp"

#include <gtest/gtest.h>

namespace tunnel::exec {
namespace {

command_rules rules_of(std::vector<std::string> texts) {
    auto parsed = command_rules::parse(texts);
    EXPECT_TRUE(parsed.has_value()) << parsed.error().message;
    return parsed.value_or(command_rules{});
}

std::string denial(const core::result<void>& checked) {
    EXPECT_FALSE(checked.has_value());
    if (checked) return {};
    EXPECT_EQ(checked.error().code, core::errc::denied);
    return checked.error().message;
}

TEST(CommandRules, ParseRule) {
    EXPECT_EQ(parse_rule("allow:ls *"), (command_rule{rule_action::allow, "ls *"}));
    EXPECT_EQ(parse_rule("deny:rm -rf *"), (command_rule{rule_action::deny, "rm -rf *"}));
    EXPECT_EQ(parse_rule("deny:a:b"), (command_rule{rule_action::deny, "a:b"}));
    EXPECT_EQ(parse_rule("allow:*"), (command_rule{rule_action::allow, "*"}));
}

TEST(CommandRules, ParseRuleRejectsAnythingElse) {
    for (const char* text :
         {"", "ls", ":ls", "allow", "allow:", "deny:", "ALLOW:ls", "Deny:ls", "permit:ls",
          " allow:ls", "allow :ls", "allow: ls", "deny:rm  ", "allow:\tls"}) {
        auto parsed = parse_rule(text);
        ASSERT_FALSE(parsed.has_value()) << text;
        EXPECT_EQ(parsed.error().code, core::errc::invalid_argument);
        EXPECT_NE(parsed.error().message.find("invalid command rule"), std::string::npos);
    }
    EXPECT_EQ(
        parse_rule("ls").error().message,
        "invalid command rule \"ls\": expected allow:PATTERN or deny:PATTERN, e.g. deny:rm -rf *");
    EXPECT_NE(parse_rule("permit:ls").error().message.find("unknown action \"permit\""),
              std::string::npos);
}

TEST(CommandRules, ParseListStopsAtFirstBadRule) {
    auto parsed = command_rules::parse({"allow:ls", "oops", "deny:x"});
    ASSERT_FALSE(parsed.has_value());
    EXPECT_NE(parsed.error().message.find("\"oops\""), std::string::npos);
}

TEST(CommandRules, EmptyListAllowsEverything) {
    const command_rules rules;
    EXPECT_TRUE(rules.empty());
    EXPECT_TRUE(rules.check("rm -rf /").has_value());
    EXPECT_TRUE(rules.check(std::vector<std::string>{"anything"}).has_value());
}

TEST(CommandRules, DenyNamesTheRule) {
    const auto rules = rules_of({"deny:rm *", "deny:reboot"});
    EXPECT_EQ(denial(rules.check("rm -rf /")), "command \"rm -rf /\" denied by rule deny \"rm *\"");
    EXPECT_EQ(denial(rules.check("reboot")), "command \"reboot\" denied by rule deny \"reboot\"");
    EXPECT_TRUE(rules.check("ls -la").has_value());
    EXPECT_TRUE(rules.check("rmdir x").has_value());
}

TEST(CommandRules, DenyWinsOverAllowWhateverTheOrder) {
    const auto allow_first = rules_of({"allow:*", "deny:shutdown *"});
    const auto deny_first = rules_of({"deny:shutdown *", "allow:*"});
    for (const auto* rules : {&allow_first, &deny_first}) {
        EXPECT_FALSE(rules->check("shutdown -h now").has_value());
        EXPECT_TRUE(rules->check("uptime").has_value());
    }
}

TEST(CommandRules, AllowRulesMakeTheListExclusive) {
    const auto rules = rules_of({"allow:uptime", "allow:df *", "deny:df /secret*"});
    EXPECT_TRUE(rules.check("uptime").has_value());
    EXPECT_TRUE(rules.check("df -h").has_value());
    EXPECT_EQ(denial(rules.check("reboot")),
              "command \"reboot\" denied: it matches no allow rule "
              "(allow \"uptime\", allow \"df *\")");
    EXPECT_NE(denial(rules.check("df /secret/x")).find("deny \"df /secret*\""), std::string::npos);
    EXPECT_FALSE(rules.check("uptime ").has_value());  // whole-string match
}

TEST(CommandRules, ListsAtMostFiveAllowRules) {
    const auto rules =
        rules_of({"allow:a", "allow:b", "allow:c", "allow:d", "allow:e", "allow:f", "allow:g"});
    EXPECT_EQ(denial(rules.check("z")),
              "command \"z\" denied: it matches no allow rule (allow \"a\", allow \"b\", "
              "allow \"c\", allow \"d\", allow \"e\", and 2 more)");
}

TEST(CommandRules, MatchingIsCaseSensitive) {
    const auto rules = rules_of({"deny:reboot"});
    EXPECT_TRUE(rules.check("REBOOT").has_value());
}

TEST(CommandRules, ArgvIsMatchedAsTheQuotedCommandLine) {
    const auto rules = rules_of({"allow:echo *", "deny:*secret*"});
    EXPECT_TRUE(rules.check(std::vector<std::string>{"echo", "hello world"}).has_value());
    EXPECT_EQ(denial(rules.check(std::vector<std::string>{"cat", "my file"})),
              "command \"cat 'my file'\" denied: it matches no allow rule "
              "(allow \"echo *\")");

    const auto exact = rules_of({"allow:echo 'hello world'"});
    EXPECT_TRUE(exact.check(std::vector<std::string>{"echo", "hello world"}).has_value());
    EXPECT_FALSE(exact.check(std::vector<std::string>{"echo", "hello", "world"}).has_value());
}

TEST(CommandRules, QuotingCannotHideArgvFromDenyRules) {
    // Quoted, the command line reads sh -c 'rm -rf /', which "*-c rm *" does
    // not match; the plain-space form does.
    const auto rules = rules_of({"deny:*-c rm *"});
    EXPECT_EQ(denial(rules.check(std::vector<std::string>{"sh", "-c", "rm -rf /"})),
              "command \"sh -c 'rm -rf /'\" denied by rule deny \"*-c rm *\"");
    EXPECT_TRUE(rules.check("sh -c 'rm -rf /'").has_value());  // a string is taken as written
}

TEST(CommandRules, MessagesStayOnOneLine) {
    const auto rules = rules_of({"deny:*"});
    const std::string message = denial(rules.check("echo a\nreboot"));
    EXPECT_EQ(message.find('\n'), std::string::npos);
    EXPECT_NE(message.find("\\x0a"), std::string::npos);
}

TEST(CommandRules, AddAppends) {
    command_rules rules;
    rules.add({rule_action::deny, "x"});
    ASSERT_EQ(rules.rules().size(), 1u);
    EXPECT_FALSE(rules.check("x").has_value());
    EXPECT_EQ(to_string(rule_action::allow), "allow");
    EXPECT_EQ(to_string(rule_action::deny), "deny");
}

}  // namespace
}  // namespace tunnel::exec
