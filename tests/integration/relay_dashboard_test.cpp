// The relay's dashboard against a real `tunnel relay`, `tunnel connect` and
// origin: the page's files and security headers, the admin token on
// /dashboard/events (Bearer or the Basic password, never from another site),
// a snapshot announcing an attach and a detach, the subscriber cap, and (on
// an admin_http_server in-process) a subscriber that stops reading being
// dropped instead of buffered without limit.
#include <thread>

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/encoding.hpp"
#include "observe/admin_http_server.hpp"
#include "observe/event_stream.hpp"
#include "support/event_stream_client.hpp"
#include "support/relay_fixture.hpp"
#include "support/streaming_origin.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

const std::string admin_token = "dashboard-admin-token-0123456789";

std::string request(const std::string& path, std::uint16_t port, const std::string& auth,
                    const std::string& extra = "") {
    return fmt::format("GET {} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n{}{}\r\n", path, port,
                       auth.empty() ? "" : "Authorization: " + auth + "\r\n", extra);
}

std::string bearer() {
    return "Bearer " + admin_token;
}

std::string basic(const std::string& password) {
    return "Basic " + core::base64_encode("admin:" + password);
}

bool lists_name(const json& snap, const std::string& tenant, const std::string& name) {
    for (const auto& t : snap.value("tunnels", json::array()))
        if (t.value("tenant", "") == tenant)
            for (const auto& n : t.value("names", json::array()))
                if (n.value("name", "") == name) return true;
    return false;
}

bool has_audit(const json& snap, const std::string& event, const std::string& tenant) {
    for (const auto& a : snap.value("audit", json::array()))
        if (a.value("event", "") == event && a["fields"].value("tenant", "") == tenant) return true;
    return false;
}

struct dashboard_relay {
    std::optional<relay_fixture> relay;
    std::unique_ptr<streaming_origin> origin;

    void start() {
        relay_options o;
        o.admin_token = admin_token;
        auto r = relay_fixture::start(o);
        ASSERT_TRUE(r) << r.error().message;
        relay.emplace(std::move(*r));
        auto orig = streaming_origin::start();
        ASSERT_TRUE(orig) << orig.error().message;
        origin = std::move(*orig);
    }
    [[nodiscard]] std::uint16_t admin_port() const { return relay->admin_port(); }
};

TEST(RelayDashboard, PageAndFilesComeFromTheBinaryWithStrictHeaders) {
    dashboard_relay d;
    ASSERT_NO_FATAL_FAILURE(d.start());
    const auto port = d.admin_port();
    for (const char* path : {"/dashboard/", "/dashboard/dashboard.js", "/dashboard/dashboard.css",
                             "/dashboard/icon.svg"}) {
        auto r = http_request(port, request(path, port, basic(admin_token)));
        ASSERT_TRUE(r) << r.error().message;
        EXPECT_EQ(r->status, 200) << path << "\n" << r->head;
        EXPECT_NE(r->head.find("Content-Security-Policy: default-src 'none'; script-src 'self'"),
                  std::string::npos)
            << r->head;
        EXPECT_NE(r->head.find("X-Content-Type-Options: nosniff"), std::string::npos);
        EXPECT_NE(r->head.find("X-Frame-Options: DENY"), std::string::npos);
        EXPECT_EQ(r->body.find(admin_token), std::string::npos) << path;
        EXPECT_FALSE(r->body.empty()) << path;
    }
    auto page = http_request(port, request("/dashboard/", port, bearer()));
    ASSERT_TRUE(page);
    EXPECT_NE(page->head.find("Content-Type: text/html"), std::string::npos);
    // No inline script: every <script> has a src (the CSP would block it anyway).
    EXPECT_EQ(page->body.find("<script>"), std::string::npos);
    EXPECT_NE(page->body.find("<script src=\"dashboard.js\""), std::string::npos);
    auto redirect = http_request(port, request("/dashboard", port, bearer()));
    ASSERT_TRUE(redirect);
    EXPECT_EQ(redirect->status, 308);
    EXPECT_NE(redirect->head.find("Location: /dashboard/"), std::string::npos);
}

TEST(RelayDashboard, EventsNeedTheAdminToken) {
    dashboard_relay d;
    ASSERT_NO_FATAL_FAILURE(d.start());
    const auto port = d.admin_port();
    auto status_with = [&](const std::string& auth, const std::string& extra = "") {
        auto c = event_stream_client::open(port, request("/dashboard/events", port, auth, extra));
        EXPECT_TRUE(c) << c.error().message;
        return c ? c->status(5s) : -1;
    };
    EXPECT_EQ(status_with(""), 401);
    EXPECT_EQ(status_with(basic("wrong-password-0123456789")), 401);
    EXPECT_EQ(status_with("Bearer wrong-token-0123456789"), 401);
    EXPECT_EQ(status_with(bearer()), 200);
    EXPECT_EQ(status_with(basic(admin_token)), 200);
    // Another site's page in the admin's browser cannot subscribe.
    EXPECT_EQ(status_with(basic(admin_token), "Sec-Fetch-Site: cross-site\r\n"), 403);
    // The challenge makes a browser show its login prompt.
    auto c = event_stream_client::open(port, request("/dashboard/events", port, ""));
    ASSERT_TRUE(c);
    EXPECT_EQ(c->status(5s), 401);
    EXPECT_NE(c->head().find("WWW-Authenticate: Basic realm="), std::string::npos) << c->head();
    // Basic is for the dashboard only.
    auto metrics = http_request(port, request("/metrics", port, basic(admin_token)));
    ASSERT_TRUE(metrics);
    EXPECT_EQ(metrics->status, 401);
    // The stream's head.
    auto ok = event_stream_client::open(port, request("/dashboard/events", port, bearer()));
    ASSERT_TRUE(ok);
    ASSERT_EQ(ok->status(5s), 200);
    EXPECT_NE(ok->head().find("Content-Type: text/event-stream"), std::string::npos) << ok->head();
    EXPECT_NE(ok->head().find("Cache-Control: no-store"), std::string::npos);
    EXPECT_EQ(ok->head().find("Content-Length"), std::string::npos);
    EXPECT_EQ(d.relay->log().find(admin_token), std::string::npos);
}

// A subscriber hears of an attach (the tunnel, its name and access mode,
// and the audit record) within 2 s, and of the detach.
TEST(RelayDashboard, ASnapshotAnnouncesAttachAndDetach) {
    dashboard_relay d;
    ASSERT_NO_FATAL_FAILURE(d.start());
    const auto port = d.admin_port();
    auto events = event_stream_client::open(port, request("/dashboard/events", port, bearer()));
    ASSERT_TRUE(events) << events.error().message;
    // The first snapshot comes at once, with no tunnel.
    auto first = events->wait_for_event(
        "snapshot", [](const json& j) { return j.contains("tunnels"); }, 2s);
    ASSERT_TRUE(first) << d.relay->log();
    EXPECT_TRUE((*first)["tunnels"].empty());

    auto token = d.relay->mint("alice", "web");
    ASSERT_TRUE(token) << token.error().message;
    auto client = d.relay->connect(*token, {{"web", d.origin->port()}});
    ASSERT_TRUE(client) << client.error().message;
    const auto published = std::chrono::steady_clock::now();
    auto attached = events->wait_for_event(
        "snapshot",
        [](const json& j) {
            return lists_name(j, "alice", "web") && has_audit(j, "attach", "alice");
        },
        2s);
    ASSERT_TRUE(attached) << "no snapshot listed alice/web within 2 s of the publish";
    EXPECT_LT(std::chrono::steady_clock::now() - published, 2s);
    const auto& t = (*attached)["tunnels"][0];
    EXPECT_EQ(t["client_ip"], "127.0.0.1");
    EXPECT_EQ(t["names"][0]["access"], "public");
    EXPECT_GE(t["uptime_seconds"].get<int>(), 0);
    EXPECT_EQ(t["breaker"], "closed");
    EXPECT_EQ((*attached)["breakers"][0]["state"], "closed");

    // A request through the tunnel shows in the totals and the tenant's row.
    auto r = http_request(d.relay->public_port(),
                          "GET /t/alice/web/hello HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          "Connection: close\r\n\r\n");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200);
    auto counted = events->wait_for_event(
        "snapshot", [](const json& j) { return j["totals"]["requests"] == 1; }, 3s);
    ASSERT_TRUE(counted);
    EXPECT_EQ((*counted)["latency"]["count"], 1);
    EXPECT_TRUE((*counted)["latency"]["p50"].is_number());
    EXPECT_TRUE((*counted)["ttfb"]["p99"].is_number());
    EXPECT_EQ((*counted)["tenants"][0]["tenant"], "alice");
    EXPECT_EQ((*counted)["tenants"][0]["requests"], 1);

    client->process().terminate();
    auto detached = events->wait_for_event(
        "snapshot",
        [](const json& j) { return j["tunnels"].empty() && has_audit(j, "detach", "alice"); }, 3s);
    EXPECT_TRUE(detached) << "no snapshot without the tunnel after it detached";
}

// At most 8 dashboards at once; a slot comes back when one leaves.
TEST(RelayDashboard, SubscribersAreCapped) {
    dashboard_relay d;
    ASSERT_NO_FATAL_FAILURE(d.start());
    const auto port = d.admin_port();
    std::vector<event_stream_client> open;
    for (int i = 0; i < 8; ++i) {
        auto c = event_stream_client::open(port, request("/dashboard/events", port, bearer()));
        ASSERT_TRUE(c);
        ASSERT_EQ(c->status(5s), 200) << i;
        open.push_back(std::move(*c));
    }
    auto refused = http_request(port, request("/dashboard/events", port, bearer()));
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->status, 503);
    EXPECT_NE(refused->body.find("too_many_subscribers"), std::string::npos) << refused->body;
    // Other admin endpoints still answer, and /metrics counts the refusal.
    std::string metrics;
    EXPECT_TRUE(streaming_origin::wait_until(
        [&] {
            metrics = d.relay->admin_get("/metrics");
            return metrics.find("relay_dashboard_subscribers_refused_total 1\n") !=
                       std::string::npos &&
                   metrics.find("relay_dashboard_subscribers 8\n") != std::string::npos;
        },
        5s))
        << metrics;
    open.pop_back();  // closes its socket: the relay frees the slot at once
    bool admitted = false;
    for (int i = 0; i < 100 && !admitted; ++i) {
        auto c = event_stream_client::open(port, request("/dashboard/events", port, bearer()));
        ASSERT_TRUE(c);
        admitted = c->status(5s) == 200;
        if (!admitted) std::this_thread::sleep_for(20ms);
    }
    EXPECT_TRUE(admitted);
}

// A reader that stops reading is dropped once max_queued_bytes wait for it:
// its connection is closed and its queue freed, while a reader that keeps up
// stays.
TEST(AdminEventStream, ASubscriberThatStopsReadingIsDropped) {
    asio::io_context io;
    auto events =
        std::make_shared<observe::event_stream>(observe::event_stream_options{4, 256 * 1024});
    std::vector<observe::admin_endpoint> table{
        {"/events", "events", [events](const observe::admin_request&) {
             auto sub = events->subscribe();
             return sub ? observe::admin_response::event_stream(std::move(sub))
                        : observe::admin_response::error(503, "full", "full");
         }}};
    observe::admin_server_options o;
    o.read_timeout = 2s;
    auto server = observe::admin_http_server::open(
        io.get_executor(), {asio::ip::make_address("127.0.0.1"), 0}, table, std::move(o));
    ASSERT_TRUE(server) << server.error().message;
    (*server)->start();
    std::thread runner([&] { io.run(); });
    struct stop_at_exit {  // also when an ASSERT returns early
        std::shared_ptr<observe::admin_http_server> server;
        std::thread& runner;
        ~stop_at_exit() {
            server->close();
            runner.join();
        }
    } stopper{*server, runner};
    const auto port = (*server)->port();
    const std::string get = "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    auto slow = event_stream_client::open(port, get, 4096);
    auto fast = event_stream_client::open(port, get);
    ASSERT_TRUE(slow && fast);
    ASSERT_EQ(slow->status(5s), 200);
    ASSERT_EQ(fast->status(5s), 200);
    // In lockstep with the fast reader (it has read every event before the
    // next is published, however loaded the machine), until the slow one,
    // whose socket buffers fill first, is dropped.
    const std::string data(16 * 1024, 'x');
    const std::size_t event_size = observe::format_event("e", data).size();
    std::size_t sent = 0;
    for (int i = 0; i < 5000 && events->dropped_total() == 0; ++i) {
        events->publish("e", data);
        sent += event_size;
        ASSERT_TRUE(fast->wait_for_bytes(sent, 10s)) << "the fast reader fell behind at " << i;
    }
    EXPECT_EQ(events->dropped_total(), 1u);
    EXPECT_GT(fast->body_bytes(), 256u * 1024);
    // The stalled reader, still not reading, is let go within the write
    // deadline (read_timeout, 2 s): its slot and its write are freed...
    EXPECT_TRUE(streaming_origin::wait_until([&] { return events->subscribers() == 1; }, 6s))
        << events->subscribers();
    // ...and its connection is closed after what was in flight.
    EXPECT_TRUE(slow->closed_by_server(10s));
    EXPECT_FALSE(fast->closed_by_server(200ms));
}

}  // namespace
}  // namespace tunnel::test
