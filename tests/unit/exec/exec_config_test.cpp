#include "exec/exec_config.hpp"

#include <gtest/gtest.h>

namespace tunnel::exec {
namespace {

TEST(ExecConfig, ReadsRulesRetriesAndTimeout) {
    auto c = parse_exec_config(
        "exec:\n  rules: ['deny:rm *', 'allow:*']\n  retries: 3\n  timeout: 5m\n", "cfg.yaml");
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->rules.rules().size(), 2u);
    EXPECT_FALSE(c->rules.check("rm -rf /"));
    EXPECT_TRUE(c->rules.check("uptime"));
    EXPECT_EQ(c->retries, 3u);
    EXPECT_EQ(c->timeout, std::chrono::minutes(5));
}

TEST(ExecConfig, EmptyDocumentIsDefaults) {
    auto c = parse_exec_config("", "cfg.yaml");
    ASSERT_TRUE(c);
    EXPECT_TRUE(c->rules.empty());
    EXPECT_FALSE(c->retries);
}

TEST(ExecConfig, EveryProblemIsReportedWithItsPath) {
    auto c = parse_exec_config(
        "exec:\n  rules: ['maybe:x']\n  retries: -1\n  timeout: 5x\n  colour: red\n", "cfg.yaml");
    ASSERT_FALSE(c);
    const auto& m = c.error().message;
    EXPECT_NE(m.find("cfg.yaml: exec.rules[0]"), std::string::npos) << m;
    EXPECT_NE(m.find("exec.retries: must be a whole number"), std::string::npos) << m;
    EXPECT_NE(m.find("exec.timeout"), std::string::npos) << m;
    EXPECT_NE(m.find("exec.colour: unknown key"), std::string::npos) << m;
}

TEST(ExecConfig, SyntaxErrorNamesLine) {
    auto c = parse_exec_config("exec:\n  rules: [\n", "cfg.yaml");
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message.find("cfg.yaml:"), std::string::npos);
    EXPECT_NE(c.error().message.find("invalid YAML"), std::string::npos);
}

TEST(ExecConfig, UnknownTopLevelKeyIsAnError) {
    auto c = parse_exec_config("exce:\n  retries: 1\n", "cfg.yaml");
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message.find("exce: unknown key"), std::string::npos) << c.error().message;
}

}  // namespace
}  // namespace tunnel::exec
