// The dashboard's model from `ls` replies and events: links and transports
// parsed defensively, throughput from two replies, the selection following
// a link's name, and the requests its keys send.
#include "ui/dashboard_model.hpp"

#include <gtest/gtest.h>

namespace tunnel::ui {
namespace {

using namespace std::chrono_literals;

nlohmann::json transport(int index, const std::string& name, const std::string& state,
                         bool active) {
    return {{"index", index},
            {"type", name == "tcp" ? "tcp" : "command"},
            {"name", name},
            {"state", state},
            {"active", active},
            {"rtt_ms", active ? nlohmann::json(1.5) : nlohmann::json()},
            {"rtt_ewma_ms", 1.6},
            {"failure_streak", 0},
            {"score", 97},
            {"rtt_samples_ms", {1.0, 2.0, 1.5}},
            {"predicted_failure_s",
             active ? nlohmann::json{{"in", 12.5}, {"error", 2.0}} : nlohmann::json()}};
}

nlohmann::json link_json(const std::string& name, std::uint64_t in, std::uint64_t out,
                         int preferred = 0) {
    return {{"name", name},
            {"state", "up"},
            {"target", "root@127.0.0.1"},
            {"transport", {{"index", 0}, {"type", "command"}, {"name", "socat"}}},
            {"rtt_ms", 1.5},
            {"preferred", {{"index", preferred}, {"name", preferred ? "tcp" : "socat"}}},
            {"switches", 2},
            {"escalations", 0},
            {"recovery_step", "none"},
            {"bytes", {{"in", in}, {"out", out}}},
            {"transports",
             {transport(0, "socat", "up", true), transport(1, "tcp", "up", false),
              transport(2, "relay", "unsupported", false)}}};
}

nlohmann::json ls(std::vector<nlohmann::json> links) {
    return {{"ok", true}, {"links", links}};
}

TEST(DashboardModel, ParsesLinksAndTransports) {
    dashboard_model m;
    ASSERT_TRUE(m.apply_ls(ls({link_json("db", 0, 0)}), clock::now()));
    ASSERT_EQ(m.links().size(), 1u);
    const auto& l = m.links()[0];
    EXPECT_EQ(l.name, "db");
    EXPECT_EQ(l.state, "up");
    EXPECT_EQ(l.target, "root@127.0.0.1");
    ASSERT_TRUE(l.active);
    EXPECT_EQ(*l.active, 0u);
    EXPECT_EQ(l.switches, 2u);
    ASSERT_EQ(l.transports.size(), 3u);
    const auto* t = l.active_transport();
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->name, "socat");
    EXPECT_TRUE(t->preferred);
    EXPECT_EQ(t->score, 97);
    ASSERT_TRUE(t->predicted);
    EXPECT_DOUBLE_EQ(t->predicted->in_s, 12.5);
    EXPECT_EQ(t->rtt_samples_ms, (std::vector<double>{1.0, 2.0, 1.5}));
    EXPECT_FALSE(l.transports[1].predicted);
    // No rate before two replies.
    EXPECT_FALSE(l.rate_in);
    ASSERT_NE(m.selected(), nullptr);
    EXPECT_EQ(m.selected()->name, "db");
}

TEST(DashboardModel, RefusesMalformedReplies) {
    dashboard_model m;
    EXPECT_FALSE(m.apply_ls({{"ok", false}, {"error", "x"}}, clock::now()));
    EXPECT_FALSE(m.apply_ls({{"ok", true}}, clock::now()));
    EXPECT_FALSE(m.apply_ls(nlohmann::json::array(), clock::now()));
    // Wrong types inside are skipped or defaulted, never thrown on.
    EXPECT_TRUE(
        m.apply_ls(ls({nlohmann::json(3), {{"name", 5}, {"transports", "x"}}}), clock::now()));
    ASSERT_EQ(m.links().size(), 1u);
    EXPECT_EQ(m.links()[0].name, "");
}

TEST(DashboardModel, ThroughputFromTwoReplies) {
    dashboard_model m;
    const auto t0 = clock::now();
    ASSERT_TRUE(m.apply_ls(ls({link_json("db", 1000, 0)}), t0));
    // Too soon after the first: no rate yet, and the first counters are kept.
    ASSERT_TRUE(m.apply_ls(ls({link_json("db", 1500, 0)}), t0 + 100ms));
    EXPECT_FALSE(m.links()[0].rate_in);
    ASSERT_TRUE(m.apply_ls(ls({link_json("db", 3000, 500)}), t0 + 2s));
    ASSERT_TRUE(m.links()[0].rate_in);
    EXPECT_DOUBLE_EQ(*m.links()[0].rate_in, 1000.0);
    EXPECT_DOUBLE_EQ(*m.links()[0].rate_out, 250.0);
    // Counters that went back (a new manager): the rate restarts at 0.
    ASSERT_TRUE(m.apply_ls(ls({link_json("db", 10, 10)}), t0 + 3s));
    EXPECT_DOUBLE_EQ(*m.links()[0].rate_in, 0.0);
}

TEST(DashboardModel, SelectionFollowsTheName) {
    dashboard_model m;
    ASSERT_TRUE(m.apply_ls(ls({link_json("a", 0, 0), link_json("b", 0, 0)}), clock::now()));
    EXPECT_EQ(m.selected()->name, "a");
    m.select_next();
    EXPECT_EQ(m.selected()->name, "b");
    m.select_next();  // stays at the last
    EXPECT_EQ(m.selected()->name, "b");
    // b moves to the front: still selected.
    ASSERT_TRUE(m.apply_ls(ls({link_json("b", 0, 0), link_json("a", 0, 0)}), clock::now()));
    EXPECT_EQ(*m.selected_index(), 0u);
    m.select_previous();
    EXPECT_EQ(m.selected()->name, "b");
    // b goes away: the first link is selected.
    ASSERT_TRUE(m.apply_ls(ls({link_json("a", 0, 0)}), clock::now()));
    EXPECT_EQ(m.selected()->name, "a");
}

TEST(DashboardModel, KeysMakeRequests) {
    dashboard_model m;
    EXPECT_FALSE(m.restart_request());
    EXPECT_FALSE(m.switch_request());
    ASSERT_TRUE(m.apply_ls(ls({link_json("db", 0, 0, 0)}), clock::now()));
    EXPECT_EQ(*m.restart_request(), (nlohmann::json{{"cmd", "restart"}, {"link", "db"}}));
    // From the preferred transport to the next one.
    EXPECT_EQ(*m.switch_request(),
              (nlohmann::json{{"cmd", "switch"}, {"link", "db"}, {"transport", "1"}}));
    // From the second, the third is unsupported: back to the first.
    ASSERT_TRUE(m.apply_ls(ls({link_json("db", 0, 0, 1)}), clock::now()));
    EXPECT_EQ((*m.switch_request())["transport"], "0");
    // A link with one transport has nothing to switch to.
    auto one = link_json("solo", 0, 0);
    one["transports"] = {transport(0, "socat", "up", true)};
    ASSERT_TRUE(m.apply_ls(ls({one}), clock::now()));
    EXPECT_FALSE(m.switch_request());
}

TEST(DashboardModel, EventsAreKeptPerLinkAndBounded) {
    dashboard_model m;
    m.apply_event({{"type", "manager_started"}, {"links", 2}, {"time_ms", 1000}});
    m.apply_event({{"type", "restart"}, {"link", "db"}, {"time_ms", 2000}});
    m.apply_event({{"type", "transport_up"}, {"link", "web"}, {"transport", "tcp"}});
    m.apply_event({{"ok", false}, {"error", "events: this reader fell 4096 events behind"}});
    m.apply_event(nlohmann::json::array());  // ignored
    ASSERT_EQ(m.events().size(), 4u);
    EXPECT_EQ(m.events()[1].link, "db");
    EXPECT_EQ(m.events()[1].text, "restart");
    EXPECT_EQ(m.events()[3].type, "error");
    auto db = m.events_of("db", 10);
    ASSERT_EQ(db.size(), 1u);
    EXPECT_EQ(db[0].time_ms, 2000);
    for (int i = 0; i < 1000; ++i) m.apply_event({{"type", "probe_failed"}, {"link", "db"}});
    EXPECT_EQ(m.events().size(), max_events);
    EXPECT_EQ(m.events_of("db", 5).size(), 5u);
    m.clear_events();
    EXPECT_TRUE(m.events().empty());
}

}  // namespace
}  // namespace tunnel::ui
