#include <gtest/gtest.h>

#include "deploy/blue_green.hpp"
#include "deploy/deploy_config.hpp"

namespace tunnel::deploy {
namespace {

core::result<deploy_config> parse(std::string_view text) {
    return parse_deploy_config(text, "deploy.yaml", "/work", false);
}

constexpr std::string_view head = "app: shop\nroot: /srv/shop\nartifact: shop.tar.gz\n";

core::result<deploy_config> with(std::string_view rest) {
    return parse(std::string(head) + std::string(rest));
}

TEST(BlueGreenConfig, TheBriefsExampleParses) {
    auto c = with(R"(health:
  - {http: "http://127.0.0.1:{{port}}/up", body: ok}
  - {command: "systemctl is-active shop@{{slot}}.service"}
strategy:
  type: blue_green
  upstream: {file: /etc/nginx/conf.d/shop-upstream.conf, template: "server 127.0.0.1:{{port}};", reload: "systemctl reload nginx"}
  slots: {blue: {port: 8001, unit: shop@blue.service}, green: {port: 8002, unit: shop@green.service}}
)");
    ASSERT_TRUE(c) << c.error().message;
    const auto& s = c->strategy;
    EXPECT_EQ(s.type, strategy_type::blue_green);
    EXPECT_EQ(s.batch.for_hosts(7), 7u) << "every host at once unless batch is set";
    EXPECT_EQ(s.blue_green.blue.port, 8001u);
    EXPECT_EQ(s.blue_green.green.unit, "shop@green.service");
    ASSERT_TRUE(s.blue_green.upstream);
    EXPECT_EQ(s.blue_green.upstream->file, "/etc/nginx/conf.d/shop-upstream.conf");
    EXPECT_EQ(s.blue_green.upstream->reload, "systemctl reload nginx");
    EXPECT_EQ(render_slot(s.blue_green.upstream->template_text, "green", s.blue_green.green),
              "server 127.0.0.1:8002;");
    EXPECT_EQ(render_slot("http://h:{{ port }}/{{slot}}/{{other}}", "blue", s.blue_green.blue),
              "http://h:8001/blue/{{other}}");
    auto batched = with("strategy: {type: blue_green, batch: 2}\n");
    ASSERT_TRUE(batched) << batched.error().message;
    EXPECT_EQ(batched->strategy.batch.for_hosts(7), 2u);
    auto plain = with("strategy: blue_green\n");
    ASSERT_TRUE(plain) << plain.error().message;
    EXPECT_FALSE(plain->strategy.blue_green.upstream);
    EXPECT_FALSE(plain->strategy.blue_green.blue.port);
}

TEST(BlueGreenConfig, MistakesAreRefusedWithPathAndLine) {
    auto c = with(R"(unit: shop.service
health:
  - {http: "http://127.0.0.1:8000/up"}
  - {command: "curl -f localhost:{{prot}}"}
strategy:
  type: blue_green
  slots: {blue: {port: 8001, unti: x}, green: {port: 8001}, red: {}}
  upstream: {file: conf/up.conf, template: "server 127.0.0.1:8001;", relaod: x}
)");
    ASSERT_FALSE(c);
    const auto& m = c.error().message;
    for (const std::string want : {
             "deploy.yaml: unit: with strategy blue_green each slot has its own unit",
             "deploy.yaml: health[0].http: must reach the new slot, which is checked before "
             "traffic is switched to it: use {{port}} (e.g. http://127.0.0.1:{{port}}/up) (line 6)",
             "deploy.yaml: health[1].command: unknown placeholder {{prot}} in it",
             "deploy.yaml: strategy.slots.blue.unti: unknown key (line 10)",
             "deploy.yaml: strategy.slots.red: unknown key",
             "deploy.yaml: strategy.slots: blue and green both use port 8001",
             "deploy.yaml: strategy.upstream.relaod: unknown key",
             "deploy.yaml: strategy.upstream.file: must be an absolute file path",
             "deploy.yaml: strategy.upstream.template: must name the live slot with {{port}} or "
             "{{slot}}",
         })
        EXPECT_NE(m.find(want), std::string::npos) << want << "\n" << m;

    auto other = with("strategy: {type: rolling, slots: {blue: {port: 1}}}\n");
    ASSERT_FALSE(other);
    EXPECT_NE(other.error().message.find(
                  "strategy.slots: applies to the blue_green strategy only (line 4)"),
              std::string::npos)
        << other.error().message;
    auto half = with(
        "strategy: {type: blue_green, slots: {blue: {port: 1}, green: {}}, upstream: "
        "{file: /a, template: \"{{port}\"}}\n");
    ASSERT_FALSE(half);
    EXPECT_NE(half.error().message.find("strategy.slots: give both slots a port, or neither"),
              std::string::npos)
        << half.error().message;
    EXPECT_NE(half.error().message.find("strategy.upstream.template: an unclosed \"{{\" in it"),
              std::string::npos)
        << half.error().message;
    auto noport = with("health: [{http: \"http://127.0.0.1:{{port}}/\"}]\nstrategy: blue_green\n");
    ASSERT_FALSE(noport);
    EXPECT_NE(
        noport.error().message.find("health[0].http: uses {{port}} but the slots have no port"),
        std::string::npos)
        << noport.error().message;
}

TEST(BlueGreenConfig, TheNewReleaseGoesToTheSlotThatIsNotLive) {
    host_state st;
    EXPECT_EQ(blue_green::target_slot(st), "blue");
    st.live_slot = "blue";
    EXPECT_EQ(blue_green::target_slot(st), "green");
    st.live_slot = "green";
    st.slots = {{"blue", "r1"}, {"green", "r2"}};
    EXPECT_EQ(blue_green::target_slot(st), "blue");
    EXPECT_EQ(blue_green::slot_marks(st, "r2"), " [green, live]");
    EXPECT_EQ(blue_green::slot_marks(st, "r1"), " [blue]");
    EXPECT_EQ(blue_green::slot_marks(st, "r0"), "");
}

}  // namespace
}  // namespace tunnel::deploy
