#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "forward/forward_metrics.hpp"
#include "forward/forward_stats.hpp"
#include "forward/status_server.hpp"
#include "observe/admin_http.hpp"

namespace tunnel::forward {
namespace {

supervisor_stats sample() {
    supervisor_stats s;
    s.destination = "root@h:22";
    s.connected = true;
    s.connects = 2;
    s.reconnects = 1;
    forward_stats l;
    l.spec = *parse_forward_spec(forward_kind::local, "8080:db:5432");
    l.state = forward_state::up;
    l.bytes_out = 10;
    l.bytes_in = 20;
    l.open_channels = 3;
    forward_stats r;
    r.spec = *parse_forward_spec(forward_kind::remote, "0:127.0.0.1:80");
    r.state = forward_state::up;
    r.bound_port = 40001;
    s.forwards = {l, r};
    return s;
}

TEST(ForwardStats, HealthyOnlyWhenConnectedAndEveryForwardUp) {
    auto s = sample();
    EXPECT_TRUE(s.healthy());
    s.forwards[1].state = forward_state::failed;
    EXPECT_FALSE(s.healthy());
    s = sample();
    s.connected = false;
    EXPECT_FALSE(s.healthy());
}

// The forward's stats through the one metrics registry (no hand-written text).
TEST(ForwardStats, PrometheusText) {
    auto status = std::make_shared<forward_status>([] { return sample(); });
    auto table = forward_status_endpoints(status);
    observe::admin_router router(table, {}, "status");
    observe::admin_request get;
    get.method = "GET";
    get.path = get.target = "/metrics";
    auto r = router.route(get, {std::string("127.0.0.1"), std::nullopt, false});
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
    const auto& text = r.body;
    EXPECT_NE(text.find("# TYPE tunnel_forward_bytes_out_total counter\n"), std::string::npos);
    EXPECT_NE(
        text.find(
            "tunnel_forward_bytes_out_total{forward=\"-L 8080:db:5432\",kind=\"local\"} 10\n"),
        std::string::npos)
        << text;
    EXPECT_NE(
        text.find("tunnel_forward_open_channels{forward=\"-L 8080:db:5432\",kind=\"local\"} 3\n"),
        std::string::npos);
    EXPECT_NE(text.find("tunnel_forward_reconnects_total 1\n"), std::string::npos);
    EXPECT_NE(text.find("tunnel_forward_state{forward=\"-R 0:127.0.0.1:80\",state=\"up\"} 1\n"),
              std::string::npos);
    EXPECT_NE(text.find("tunnel_forward_state{forward=\"-R 0:127.0.0.1:80\",state=\"down\"} 0\n"),
              std::string::npos);
    EXPECT_NE(text.find("tunnel_forward_connected{destination=\"root@h:22\"} 1\n"),
              std::string::npos);
    // Every sample line is "name{labels} value" or "name value".
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line[0] == '#') continue;
        EXPECT_NE(line.rfind(' '), std::string::npos) << line;
    }
}

TEST(ForwardStats, CountersMirrorSnapshotsAndNeverGoDown) {
    observe::metrics_registry registry;
    forward_metrics m(registry);
    auto s = sample();
    m.update(s);
    s.forwards[0].bytes_out = 25;
    m.update(s);
    EXPECT_EQ(m.bytes_out.value({"-L 8080:db:5432", "local"}), 25);
    s.forwards[0].bytes_out = 5;  // a snapshot that went backwards does not lower a counter
    m.update(s);
    EXPECT_EQ(m.bytes_out.value({"-L 8080:db:5432", "local"}), 25);
}

TEST(ForwardStats, StatusJson) {
    auto j = nlohmann::json::parse(render_status_json(sample()));
    EXPECT_EQ(j["destination"], "root@h:22");
    EXPECT_TRUE(j["healthy"].get<bool>());
    EXPECT_EQ(j["forwards"][1]["bound_port"], 40001);
    EXPECT_EQ(j["forwards"][0]["target"], "db:5432");
    EXPECT_FALSE(j["forwards"][0].contains("bound_port"));
}

TEST(StatusRouting, TableDrivesRoutesAndHelp) {
    auto s = sample();
    auto status = std::make_shared<forward_status>([&] { return s; });
    observe::admin_router router(forward_status_endpoints(status), {}, "status");
    auto route = [&](const std::string& method, const std::string& path) {
        observe::admin_request r;
        r.method = method;
        r.target = path;
        r.path = path.substr(0, path.find('?'));
        return router.route(r, {std::string("127.0.0.1:9100"), std::nullopt, false});
    };
    EXPECT_EQ(route("GET", "/healthz").status, 200);
    s.connected = false;
    EXPECT_EQ(route("GET", "/healthz").status, 503);
    EXPECT_EQ(route("GET", "/metrics?x=1").status, 200);
    EXPECT_EQ(route("POST", "/status").status, 405);
    EXPECT_EQ(route("GET", "/nope").status, 404);
    auto help = route("GET", "/help");
    EXPECT_EQ(help.status, 200);
    for (const auto* p : {"/healthz", "/metrics", "/status", "/help"})
        EXPECT_NE(help.body.find(p), std::string::npos);
}

}  // namespace
}  // namespace tunnel::forward
