// The dashboard's screen at 80x24 and larger: every row fits, links,
// transports, scores, predictions and events are on it, the selected link's
// log replaces the tables, and a smaller terminal is told it is too small.
#include "ui/dashboard_layout.hpp"

#include <gtest/gtest.h>

namespace tunnel::ui {
namespace {

std::string screen_text(const std::vector<screen_row>& rows) {
    std::string out;
    for (const auto& r : rows) out += row_text(r) + "\n";
    return out;
}

nlohmann::json link_json(const std::string& name, int transports = 2) {
    nlohmann::json ts = nlohmann::json::array();
    for (int i = 0; i < transports; ++i)
        ts.push_back({{"index", i},
                      {"type", i == 0 ? "command" : "http_connect"},
                      {"name", i == 0 ? "socat" : "proxy-with-a-very-long-name"},
                      {"state", i == 0 ? "up" : "down"},
                      {"active", i == 0},
                      {"rtt_ms", i == 0 ? nlohmann::json(1.25) : nlohmann::json()},
                      {"score", i == 0 ? 97 : 0},
                      {"rtt_samples_ms", {1.0, 3.0, 2.0, 8.0}},
                      {"predicted_failure_s",
                       i == 0 ? nlohmann::json{{"in", 12.0}, {"error", 3.0}} : nlohmann::json()},
                      {"last_error", "connection refused by 127.0.0.1:1 after a long wait"}});
    return {{"name", name},
            {"state", "up"},
            {"target", "root@127.0.0.1"},
            {"transport", {{"index", 0}, {"name", "socat"}}},
            {"rtt_ms", 1.25},
            {"preferred", {{"index", 0}, {"name", "socat"}}},
            {"bytes", {{"in", 0}, {"out", 0}}},
            {"transports", ts}};
}

dashboard_model model_with(int links) {
    dashboard_model m;
    nlohmann::json all = nlohmann::json::array();
    for (int i = 0; i < links; ++i)
        all.push_back(link_json(i == 0 ? "db" : "link" + std::to_string(i)));
    EXPECT_TRUE(m.apply_ls({{"ok", true}, {"links", all}}, clock::now()));
    m.apply_event({{"type", "restart"}, {"link", "db"}, {"time_ms", 1000}});
    m.apply_event({{"type", "switch"},
                   {"link", "db"},
                   {"from", 1},
                   {"to", 0},
                   {"transport", "socat"},
                   {"reason", "tunnel switch"},
                   {"time_ms", 2000}});
    return m;
}

void expect_fits(const std::vector<screen_row>& rows, int width, int lines) {
    EXPECT_LE(rows.size(), static_cast<std::size_t>(lines));
    for (const auto& r : rows)
        EXPECT_LE(columns(row_text(r)), static_cast<std::size_t>(width)) << row_text(r);
}

TEST(DashboardLayout, ShowsLinksTransportsAndEventsAt80x24) {
    auto m = model_with(1);
    view_state v;
    v.socket = "/run/user/1000/tunnel/control.sock";
    const auto rows = layout(m, v, 80, 24);
    ASSERT_EQ(rows.size(), 24u);
    expect_fits(rows, 80, 24);
    const auto text = screen_text(rows);
    EXPECT_NE(text.find("tunnel ui"), std::string::npos) << text;
    EXPECT_NE(text.find("connected, 1 link"), std::string::npos) << text;
    EXPECT_NE(text.find("> db"), std::string::npos) << text;
    EXPECT_NE(text.find("socat#0"), std::string::npos) << text;
    EXPECT_NE(text.find("1.2ms"), std::string::npos) << text;
    EXPECT_NE(text.find("▁▃▂█"), std::string::npos) << text;  // the RTT sparkline
    EXPECT_NE(text.find("fails in ~12s ± 3s"), std::string::npos) << text;
    EXPECT_NE(text.find("97"), std::string::npos) << text;
    EXPECT_NE(text.find("connection refused"), std::string::npos) << text;  // the down one
    EXPECT_NE(text.find("switch to socat#0 from #1: tunnel switch"), std::string::npos) << text;
    EXPECT_NE(text.find("q: quit"), std::string::npos) << text;  // the key help
}

TEST(DashboardLayout, EveryRowFitsAtManySizes) {
    auto m = model_with(30);
    m.select("link25");
    view_state v;
    v.socket = std::string(300, 's');
    v.status = std::string(300, 'x');
    for (int w : {80, 81, 100, 133, 250})
        for (int h : {24, 25, 40, 80}) {
            const auto rows = layout(m, v, w, h);
            ASSERT_EQ(rows.size(), static_cast<std::size_t>(h)) << w << "x" << h;
            expect_fits(rows, w, h);
            // The selected link is scrolled into view.
            EXPECT_NE(screen_text(rows).find("> link25"), std::string::npos) << w << "x" << h;
        }
}

TEST(DashboardLayout, AsciiWithoutUnicode) {
    auto m = model_with(1);
    view_state v;
    v.unicode = false;
    const auto text = screen_text(layout(m, v, 80, 24));
    EXPECT_NE(text.find("_-.#"), std::string::npos) << text;
    EXPECT_NE(text.find("fails in ~12s +- 3s"), std::string::npos) << text;
    for (unsigned char c : text) EXPECT_LT(c, 0x80) << text;
}

TEST(DashboardLayout, LogViewShowsTheSelectedLinksEvents) {
    auto m = model_with(2);
    m.apply_event({{"type", "restart"}, {"link", "link1"}, {"time_ms", 3000}});
    view_state v;
    v.shown = view_state::mode::log;
    auto text = screen_text(layout(m, v, 80, 24));
    EXPECT_NE(text.find("LOG of db"), std::string::npos) << text;
    EXPECT_NE(text.find("switch to socat#0"), std::string::npos) << text;
    m.select("link1");
    text = screen_text(layout(m, v, 80, 24));
    EXPECT_NE(text.find("LOG of link1"), std::string::npos) << text;
    EXPECT_EQ(text.find("switch to socat#0"), std::string::npos) << text;
    EXPECT_NE(text.find("restart"), std::string::npos) << text;
}

TEST(DashboardLayout, DisconnectedAndEmpty) {
    dashboard_model m;
    view_state v;
    v.connected = false;
    v.status = "the manager closed the connection; retrying every 1000 ms (q: quit)";
    v.status_is_error = true;
    const auto rows = layout(m, v, 80, 24);
    const auto text = screen_text(rows);
    EXPECT_NE(text.find("manager gone: reconnecting"), std::string::npos) << text;
    EXPECT_NE(text.find("(no data)"), std::string::npos) << text;
    EXPECT_NE(row_text(rows.back()).find("retrying"), std::string::npos) << text;
}

TEST(DashboardLayout, TooSmallSaysSo) {
    auto m = model_with(1);
    view_state v;
    for (auto [w, h] : std::vector<std::pair<int, int>>{{79, 24}, {80, 23}, {40, 10}, {10, 1}}) {
        const auto rows = layout(m, v, w, h);
        ASSERT_FALSE(rows.empty());
        expect_fits(rows, w, h);
        EXPECT_EQ(row_text(rows[0]).rfind("terminal", 0), 0u) << row_text(rows[0]);
    }
    EXPECT_NE(row_text(layout(m, v, 79, 24)[0]).find("needs 80x24"), std::string::npos);
    EXPECT_TRUE(layout(m, v, 0, 0).empty());
}

}  // namespace
}  // namespace tunnel::ui
