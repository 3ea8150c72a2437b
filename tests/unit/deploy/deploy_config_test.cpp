#include <gtest/gtest.h>

#include "deploy/deploy_config.hpp"

namespace tunnel::deploy {
namespace {

core::result<deploy_config> parse_deploy(std::string_view text) {
    return parse_deploy_config(text, "deploy.yaml", "/work", false);
}

TEST(DeployConfig, TheIssueExampleParses) {
    auto c = parse_deploy(R"(app: shop
root: /srv/shop
artifact: build/shop.tar.gz            # or a directory, a .zip, a single binary
shared: [log, .env]
keep_releases: 5
unit: shop.service                     # restarted after the switch; waited for until active
hooks: {before_switch: ["./bin/migrate"], after_failure: ["logger deploy failed"]}
health:
  - {http: "http://127.0.0.1:8000/up", status: 200, body: "ok", timeout: 30s}
  - {command: "systemctl is-active shop"}
strategy: {type: rolling, batch: 2, max_fail_percentage: 0}   # recreate | rolling | canary | blue_green
)");
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->app, "shop");
    EXPECT_EQ(c->root, "/srv/shop");
    EXPECT_EQ(c->artifact, "/work/build/shop.tar.gz");
    EXPECT_EQ(c->kind, artifact_kind::tar_gz);
    EXPECT_EQ(c->shared, (std::vector<std::string>{"log", ".env"}));
    EXPECT_EQ(c->keep_releases, 5u);
    EXPECT_EQ(c->unit, "shop.service");
    EXPECT_EQ(c->hooks.before_switch, std::vector<std::string>{"./bin/migrate"});
    EXPECT_EQ(c->hooks.after_failure, std::vector<std::string>{"logger deploy failed"});
    ASSERT_EQ(c->health.size(), 2u);
    EXPECT_EQ(c->health[0].http, "http://127.0.0.1:8000/up");
    EXPECT_EQ(c->health[0].status, 200);
    EXPECT_EQ(c->health[0].body, "ok");
    EXPECT_EQ(c->health[0].timeout, std::chrono::seconds(30));
    EXPECT_EQ(c->health[1].command, "systemctl is-active shop");
    EXPECT_EQ(c->health[1].label(), "command systemctl is-active shop");
    EXPECT_EQ(c->strategy.type, strategy_type::rolling);
    EXPECT_EQ(c->strategy.batch.value, 2u);
    EXPECT_FALSE(c->strategy.batch.percent);
    EXPECT_EQ(c->strategy.max_fail_percentage, 0u);
}

TEST(DeployConfig, DefaultsAndArtifactKinds) {
    auto c = parse_deploy("app: a\nroot: /srv/a/\nartifact: /tmp/a.zip\n");
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->root, "/srv/a");
    EXPECT_EQ(c->kind, artifact_kind::zip);
    EXPECT_EQ(c->keep_releases, 5u);
    EXPECT_EQ(c->strategy.type, strategy_type::rolling);
    EXPECT_EQ(c->strategy.batch.for_hosts(4), 1u);
    EXPECT_EQ(parse_deploy("app: a\nroot: /a\nartifact: x.tgz\n")->kind, artifact_kind::tar_gz);
    EXPECT_EQ(parse_deploy("app: a\nroot: /a\nartifact: bin/server\n")->kind,
              artifact_kind::binary);
    EXPECT_EQ(parse_deploy("app: a\nroot: /a\nartifact: dist/\n")->kind, artifact_kind::directory);
    auto pct =
        parse_deploy("app: a\nroot: /a\nartifact: x.tgz\nstrategy: {type: canary, batch: 25%}\n");
    ASSERT_TRUE(pct) << pct.error().message;
    EXPECT_TRUE(pct->strategy.batch.percent);
    EXPECT_EQ(pct->strategy.batch.for_hosts(10), 3u);  // 2.5 rounds up
    EXPECT_EQ(pct->strategy.batch.for_hosts(1), 1u);
    auto word = parse_deploy("app: a\nroot: /a\nartifact: x.tgz\nstrategy: recreate\n");
    ASSERT_TRUE(word) << word.error().message;
    EXPECT_EQ(word->strategy.type, strategy_type::recreate);
}

TEST(DeployConfig, UnknownKeysAreRefusedWithPathAndLine) {
    auto c = parse_deploy(R"(app: shop
root: /srv/shop
artifact: shop.tar.gz
keep_relases: 3
hooks: {before_swicth: [x]}
health:
  - {http: "http://127.0.0.1/up", stauts: 200}
strategy: {type: rolling, btach: 2}
)");
    ASSERT_FALSE(c);
    const auto& m = c.error().message;
    EXPECT_EQ(c.error().code, core::errc::invalid_argument);
    EXPECT_NE(m.find("deploy.yaml: keep_relases: unknown key (line 4)"), std::string::npos) << m;
    EXPECT_NE(m.find("deploy.yaml: hooks.before_swicth: unknown key (line 5)"), std::string::npos)
        << m;
    EXPECT_NE(m.find("deploy.yaml: health[0].stauts: unknown key (line 7)"), std::string::npos)
        << m;
    EXPECT_NE(m.find("deploy.yaml: strategy.btach: unknown key (line 8)"), std::string::npos) << m;
}

TEST(DeployConfig, BadValuesSayWhatIsWrong) {
    auto c = parse_deploy(R"(app: "my app"
root: srv/shop
artifact: shop.tar.gz
shared: [../etc]
keep_releases: 1
unit: "a b"
health:
  - {http: "ftp://x", timeout: 5x}
  - {command: "true", status: 200}
  - {http: "http://a", command: "b"}
  - {}
strategy: {type: blue-red, batch: 150%, max_fail_percentage: 101}
)");
    ASSERT_FALSE(c);
    const auto& m = c.error().message;
    for (auto want :
         {"app: must be a name", "root: must be an absolute directory",
          "shared[0]: \"../etc\" must be a path inside the release",
          "keep_releases: must be a whole number from 2 to 1000 (line 5)",
          "unit: must be a systemd unit name (e.g. shop.service) (line 6)",
          "health[0].http: must be an http:// or https:// URL (line 8)",
          "health[0].timeout: invalid duration", "health[1].status: applies to http checks only",
          "health[2]: has both http and command", "health[3]: needs http: URL or command: CMD",
          "strategy.type: unknown strategy \"blue-red\"",
          "strategy.batch: a percentage must be from 1% to 100% (line 12)",
          "strategy.max_fail_percentage: must be a whole number from 0 to 100"})
        EXPECT_NE(m.find(want), std::string::npos) << want << "\n" << m;
}

TEST(DeployConfig, MissingRequiredKeysAndSyntaxErrors) {
    auto c = parse_deploy("keep_releases: 3\n");
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message.find("app: is required"), std::string::npos);
    EXPECT_NE(c.error().message.find("root: is required"), std::string::npos);
    EXPECT_NE(c.error().message.find("artifact: is required"), std::string::npos);
    auto s = parse_deploy("app: [unclosed\n");
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().message.find("deploy.yaml:"), std::string::npos);
    EXPECT_NE(s.error().message.find("invalid YAML"), std::string::npos) << s.error().message;
    auto list = parse_deploy("- app: x\n");
    ASSERT_FALSE(list);
    EXPECT_NE(list.error().message.find("must be a mapping"), std::string::npos);
}

TEST(DeployConfig, BatchesPerStrategy) {
    strategy s;
    s.type = strategy_type::rolling;
    s.batch = {2, false};
    EXPECT_EQ(plan_batches(s, 5), (std::vector<std::vector<std::size_t>>{{0, 1}, {2, 3}, {4}}));
    s.type = strategy_type::recreate;
    EXPECT_EQ(plan_batches(s, 3), (std::vector<std::vector<std::size_t>>{{0, 1, 2}}));
    s.type = strategy_type::canary;
    s.batch = {1, false};
    EXPECT_EQ(plan_batches(s, 4), (std::vector<std::vector<std::size_t>>{{0}, {1, 2, 3}}));
    s.type = strategy_type::rolling;
    s.batch = {50, true};
    EXPECT_EQ(plan_batches(s, 3), (std::vector<std::vector<std::size_t>>{{0, 1}, {2}}));
    EXPECT_TRUE(plan_batches(s, 0).empty());
}

TEST(DeployConfig, RootFromInventoryVariables) {
    auto c =
        parse_deploy("app: a\nroot: \"{{ base }}/{{inventory_hostname}}/\"\nartifact: x.tgz\n");
    ASSERT_TRUE(c) << c.error().message;
    auto r = root_for_host(*c, "web1", nlohmann::json{{"base", "/srv"}});
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*r, "/srv/web1");
    auto missing = root_for_host(*c, "web2", nlohmann::json::object());
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message.find("deploy.yaml: root: host web2 has no variable base"),
              std::string::npos)
        << missing.error().message;
    auto relative = root_for_host(*c, "web3", nlohmann::json{{"base", "srv"}});
    ASSERT_FALSE(relative);
    EXPECT_NE(relative.error().message.find("must be an absolute directory"), std::string::npos);
    auto plain = parse_deploy("app: a\nroot: /srv/a\nartifact: x.tgz\n");
    EXPECT_EQ(*root_for_host(*plain, "h", nlohmann::json::object()), "/srv/a");
}

TEST(DeployConfig, MaxFailPercentage) {
    EXPECT_FALSE(exceeds_max_fail(0, 0, 4));
    EXPECT_TRUE(exceeds_max_fail(0, 1, 4));
    EXPECT_FALSE(exceeds_max_fail(25, 1, 4));
    EXPECT_TRUE(exceeds_max_fail(25, 2, 4));
    EXPECT_FALSE(exceeds_max_fail(100, 4, 4));
}

}  // namespace
}  // namespace tunnel::deploy
