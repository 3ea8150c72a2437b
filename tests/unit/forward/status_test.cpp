#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "forward/forward_stats.hpp"
#include "forward/status_server.hpp"

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

TEST(ForwardStats, PrometheusText) {
    auto text = render_metrics(sample());
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
    // Every sample line is "name{labels} value" or "name value".
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line[0] == '#') continue;
        EXPECT_NE(line.rfind(' '), std::string::npos) << line;
    }
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
    auto table = forward_status_endpoints([&] { return s; });
    EXPECT_EQ(route_request(table, "GET /healthz HTTP/1.1\r\n\r\n").status, 200);
    s.connected = false;
    EXPECT_EQ(route_request(table, "GET /healthz HTTP/1.1\r\n\r\n").status, 503);
    EXPECT_EQ(route_request(table, "GET /metrics?x=1 HTTP/1.0\r\n\r\n").status, 200);
    EXPECT_EQ(route_request(table, "POST /status HTTP/1.1\r\n\r\n").status, 405);
    EXPECT_EQ(route_request(table, "GET /nope HTTP/1.1\r\n\r\n").status, 404);
    EXPECT_EQ(route_request(table, "garbage\r\n\r\n").status, 400);
    EXPECT_EQ(route_request(table, "").status, 400);
    auto help = route_request(table, "GET /help HTTP/1.1\r\n\r\n");
    EXPECT_EQ(help.status, 200);
    for (const auto* p : {"/healthz", "/metrics", "/status", "/help"})
        EXPECT_NE(help.body.find(p), std::string::npos);
    auto wire = serialize({200, "text/plain", "ok\n"});
    EXPECT_EQ(wire,
              "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nCache-Control: "
              "no-store\r\n"
              "Connection: close\r\n\r\nok\n");
}

}  // namespace
}  // namespace tunnel::forward
