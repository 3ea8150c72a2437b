// The relay's keep-alive pool (channel_pool.hpp), end to end: a real
// `tunnel relay`, a real `tunnel connect`, an origin that counts its
// connections. Callers that close their connection after every request
// (Connection: close) still share one channel, and so one origin connection;
// a pooled channel whose origin went away costs no request; idle channels go
// after limits.idle_channel_timeout; `idle_channels_per_name: 0` turns the
// pool off.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "support/relay_fixture.hpp"
#include "support/streaming_origin.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;

class RelayKeepAlivePool : public ::testing::Test {
  protected:
    void start(const std::string& limits_yaml = "") {
        relay_options o;
        o.extra_yaml = "limits:\n  tenant_rps: 1000\n  route_rps: 1000\n" + limits_yaml;
        auto r = relay_fixture::start(std::move(o));
        ASSERT_TRUE(r) << r.error().message;
        relay.emplace(std::move(*r));
        auto org = streaming_origin::start();
        ASSERT_TRUE(org) << org.error().message;
        origin = std::move(*org);
        auto tok = relay->mint("alice", "web");
        ASSERT_TRUE(tok) << tok.error().message;
        auto c = relay->connect(*tok, {{"web", origin->port()}});
        ASSERT_TRUE(c) << c.error().message;
        client.emplace(std::move(*c));
    }

    // One request on a new connection that the caller closes after it.
    http_reply get_closing(const std::string& path) {
        auto r = http_request(
            relay->public_port(),
            fmt::format("GET /t/alice/web{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                        path),
            10s);
        EXPECT_TRUE(r) << r.error().message;
        return r ? *r : http_reply{};
    }

    std::optional<relay_fixture> relay;
    std::unique_ptr<streaming_origin> origin;
    std::optional<relay_client> client;
};

TEST_F(RelayKeepAlivePool, ClosingCallersShareOneOriginConnection) {
    start();
    for (int i = 0; i < 20; ++i) {
        auto r = get_closing("/hello");
        ASSERT_EQ(r.status, 200) << r.raw << "\n" << relay->log();
        EXPECT_EQ(r.body, "hello\n");
        // The caller was told its connection closes.
        EXPECT_NE(r.head.find("Connection: close"), std::string::npos) << r.head;
    }
    // One channel, kept between callers; one connection at the origin.
    EXPECT_EQ(origin->requests(), 20);
    EXPECT_EQ(origin->connections(), 1) << relay->log();
}

TEST_F(RelayKeepAlivePool, ClosingCallersWithBodiesShareOneOriginConnection) {
    start();
    // A body the relay streams (pump_request) rather than sending with the
    // head: the channel must be back in the pool before the caller sees the
    // end of the answer, or the caller's next request opens a new one.
    for (int i = 0; i < 20; ++i) {
        auto r = http_request(relay->public_port(),
                              "POST /t/alice/web/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                              "chunked\r\nConnection: close\r\n\r\n"
                              "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
                              10s);
        ASSERT_TRUE(r) << r.error().message;
        ASSERT_EQ(r->status, 200) << r->raw << "\n" << relay->log();
        EXPECT_EQ(r->body, "hello world");
    }
    EXPECT_EQ(origin->requests(), 20);
    EXPECT_EQ(origin->connections(), 1) << relay->log();
}

TEST_F(RelayKeepAlivePool, AnOriginThatClosesAfterAnsweringLosesNoRequest) {
    start();
    // /bye answers as if it kept the connection, then closes it: the pooled
    // channel may be taken before its close reaches the relay; the request
    // is then sent again on a new channel, not answered 502.
    for (int i = 0; i < 40; ++i) {
        auto r = get_closing("/bye");
        ASSERT_EQ(r.status, 200) << "request " << i << ": " << r.raw << "\n" << relay->log();
        EXPECT_EQ(r.body, "bye\n");
    }
    EXPECT_EQ(origin->connections(), origin->requests());
    // No origin failure was counted against the tunnel's breaker.
    const auto metrics = relay->admin_get("/metrics");
    EXPECT_EQ(metrics.find("relay_origin_failures_total 1"), std::string::npos) << metrics;
}

TEST_F(RelayKeepAlivePool, IdleChannelsAreClosedAfterTheTimeout) {
    start("  idle_channel_timeout: 1s\n");
    ASSERT_EQ(get_closing("/hello").status, 200);
    EXPECT_EQ(origin->open_connections(), 1);
    // Swept within 1.5 timeouts; tunnel connect then closes the origin connection.
    EXPECT_TRUE(streaming_origin::wait_until([&] { return origin->open_connections() == 0; }, 5s))
        << origin->open_connections() << " origin connections still open";
    ASSERT_EQ(get_closing("/hello").status, 200);
    EXPECT_EQ(origin->connections(), 2);
}

TEST_F(RelayKeepAlivePool, ZeroIdleChannelsTurnsThePoolOff) {
    start("  idle_channels_per_name: 0\n");
    for (int i = 0; i < 5; ++i) ASSERT_EQ(get_closing("/hello").status, 200);
    EXPECT_TRUE(streaming_origin::wait_until([&] { return origin->open_connections() == 0; }, 5s));
    EXPECT_EQ(origin->connections(), 5);
}

TEST_F(RelayKeepAlivePool, APostTakesThePooledChannelAndIsDeliveredOnce) {
    start();
    // A request with a body is never sent again (it is not retryable), so
    // on a pooled channel it must reach the origin exactly once.
    ASSERT_EQ(get_closing("/hello").status, 200);
    const int before = origin->requests();
    auto r = http_request(relay->public_port(),
                          "POST /t/alice/web/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                          "Connection: close\r\n\r\nhello",
                          10s);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "hello");
    EXPECT_EQ(origin->requests(), before + 1);
    EXPECT_EQ(origin->connections(), 1);
}

}  // namespace
}  // namespace tunnel::test
