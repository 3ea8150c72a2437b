// The relay-to-relay proxy hop (docs/cluster.md "The proxy hop"): two real
// `tunnel relay` processes on one real redis-server; a tunnel attached to A
// publishes acme/web and callers reach it through B. Hostile connections to
// A's internal port are refused and never reach the origin; with A gone, B
// answers 502 with Retry-After at once.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "cluster_hop_fixture.hpp"
#include "relay/hop_preamble.hpp"
#include "support/net.hpp"
#include "support/relay_fixture.hpp"

namespace tunnel::test {
namespace {

const std::string hello_request =
    "GET /t/acme/web/hello HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

TEST(ClusterHop, ARequestToBIsServedByTheTunnelOnA) {
    hop_cluster c;
    const auto failed = c.start();
    ASSERT_TRUE(failed.empty()) << failed;

    // A caller on 127.0.0.2: the origin sees it, not B's address.
    bool closed = false;
    const auto raw = exchange_from("127.0.0.2", c.b->public_port(),
                                   "GET /t/acme/web/headers HTTP/1.1\r\nHost: "
                                   "127.0.0.1\r\nConnection: close\r\n\r\n",
                                   closed);
    auto reply = parse_http_reply(raw);
    ASSERT_TRUE(reply) << raw;
    EXPECT_EQ(reply->status, 200) << raw;
    EXPECT_NE(reply->body.find("X-Forwarded-For: 127.0.0.2\r\n"), std::string::npos) << reply->body;
    EXPECT_NE(reply->body.find("X-Real-IP: 127.0.0.2\r\n"), std::string::npos) << reply->body;
    EXPECT_EQ(reply->body.find("TUNNEL-HOP"), std::string::npos) << reply->body;

    // A body goes through too (POST, Content-Length).
    auto echo = http_request(c.b->public_port(),
                             "POST /t/acme/web/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: "
                             "11\r\nConnection: close\r\n\r\nhello world");
    ASSERT_TRUE(echo) << echo.error().message;
    EXPECT_EQ(echo->status, 200) << echo->raw;
    EXPECT_EQ(echo->body, "hello world");

    // The hops are counted on both sides.
    EXPECT_NE(c.b->admin_get("/metrics").find("relay_cluster_hops_total{outcome=\"sent\"}"),
              std::string::npos);
    EXPECT_NE(c.a->admin_get("/metrics").find("relay_cluster_hops_total{outcome=\"received\"}"),
              std::string::npos);
}

TEST(ClusterHop, AStreamedResponseArrivesThroughBAsItIsProduced) {
    hop_cluster c;
    const auto failed = c.start();
    ASSERT_TRUE(failed.empty()) << failed;
    int fd = connect_from("127.0.0.1", c.b->public_port());
    ASSERT_GE(fd, 0);
    const auto start = steady::now();
    send_all(fd,
             "GET /t/acme/web/stream?n=6&ms=250 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: "
             "close\r\n\r\n");
    std::optional<steady::time_point> first;
    bool closed = false;
    const auto raw = read_until(fd, 15s, closed, [&](const std::string& so_far) {
        if (!first && so_far.find("{\"i\":0}") != std::string::npos) first = steady::now();
        return so_far.find("0\r\n\r\n") != std::string::npos &&
               so_far.find("{\"i\":5}") != std::string::npos;
    });
    const auto last = steady::now();
    ::close(fd);
    ASSERT_TRUE(first) << raw;
    ASSERT_NE(raw.find("{\"i\":5}"), std::string::npos) << raw;
    // Six lines 250 ms apart: the first arrives ~1.25 s before the last.
    EXPECT_GT(last - *first, 800ms) << raw;
    EXPECT_LT(*first - start, 1s) << raw;
}

// A caller that leaves in the middle of a stream through B (a GET: B runs
// no pump of its own for it, its connection reader notices the hang-up):
// B closes the hop, A closes the channel and the origin's stream stops.
TEST(ClusterHop, ACallerLeavingMidStreamThroughBStopsTheStreamAtTheOrigin) {
    hop_cluster c;
    const auto failed = c.start();
    ASSERT_TRUE(failed.empty()) << failed;
    int fd = connect_from("127.0.0.1", c.b->public_port());
    ASSERT_GE(fd, 0);
    send_all(fd, "GET /t/acme/web/stream?n=100&ms=100 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    bool closed = false;
    const auto raw = read_until(fd, 10s, closed, [](const std::string& so_far) {
        return so_far.find("{\"i\":1}") != std::string::npos;
    });
    ::close(fd);
    ASSERT_NE(raw.find("{\"i\":1}"), std::string::npos) << raw;
    EXPECT_TRUE(streaming_origin::wait_until([&] { return c.origin->streams_aborted() >= 1; }, 5s))
        << "the origin kept streaming to a caller that left";
    EXPECT_EQ(c.origin->streams_completed(), 0);
}

TEST(ClusterHop, BadPreamblesOnTheInternalPortAreRefusedAndNeverReachTheOrigin) {
    hop_cluster c;
    const auto failed = c.start();
    ASSERT_TRUE(failed.empty()) << failed;
    const int before = c.origin->requests();
    const auto now = relay::unix_ms_now();

    // Sends `data`; true when A closed without a byte within `timeout`.
    auto refused = [&](const std::string& data, std::chrono::milliseconds timeout = 5s) {
        int fd = connect_from("127.0.0.1", c.a_internal);
        if (fd < 0) return false;
        send_all(fd, data);
        bool closed = false;
        const auto raw = read_until(fd, timeout, closed);
        ::close(fd);
        return closed && raw.empty();
    };
    const std::string good = hop_cluster::preamble(now);
    ASSERT_FALSE(good.empty());
    std::string bad_mac = good;
    bad_mac[bad_mac.size() - 3] = bad_mac[bad_mac.size() - 3] == 'a' ? 'b' : 'a';
    EXPECT_TRUE(refused(bad_mac + hello_request)) << "a wrong HMAC";
    EXPECT_TRUE(refused(hop_cluster::preamble(now - 60'000) + hello_request)) << "stale";
    EXPECT_TRUE(refused(hop_cluster::preamble(now + 60'000) + hello_request)) << "future";
    EXPECT_TRUE(refused(std::string(600, 'x'))) << "oversized";
    EXPECT_TRUE(refused(hello_request)) << "no preamble at all";
    EXPECT_TRUE(refused("TUNNEL-HOP/1 relay-b garbage\r\n" + hello_request)) << "garbage";

    // A slow preamble: half of it, then nothing; closed after ~3 s.
    const auto slow_from = steady::now();
    EXPECT_TRUE(refused(good.substr(0, 20), 8s)) << "slow";
    EXPECT_LT(steady::now() - slow_from, 6s);
    EXPECT_GT(steady::now() - slow_from, 2s);

    // A good preamble is served, with the caller it vouches for...
    const std::string fresh = hop_cluster::preamble(relay::unix_ms_now());
    int fd = connect_from("127.0.0.1", c.a_internal);
    ASSERT_GE(fd, 0);
    send_all(fd, fresh +
                     "GET /t/acme/web/headers HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: "
                     "close\r\n\r\n");
    bool closed = false;
    const auto raw = read_until(fd, 10s, closed);
    ::close(fd);
    auto reply = parse_http_reply(raw);
    ASSERT_TRUE(reply) << raw << c.a->log();
    EXPECT_EQ(reply->status, 200);
    EXPECT_NE(reply->body.find("X-Forwarded-For: 127.0.0.9\r\n"), std::string::npos) << reply->body;
    // ... once: the same preamble again is a replay.
    EXPECT_TRUE(refused(fresh + hello_request)) << "replayed";

    // A hop connection is bound to its route: another name is 421 (with
    // version 2 too: no announcement, the request never started).
    fd = connect_from("127.0.0.1", c.a_internal);
    ASSERT_GE(fd, 0);
    send_all(fd, hop_cluster::preamble(relay::unix_ms_now(), "127.0.0.9", 2) +
                     "GET /t/acme/other/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    const auto other = read_until(fd, 10s, closed);
    ::close(fd);
    EXPECT_EQ(other.rfind("HTTP/1.1 421 ", 0), 0u) << other;

    // Version 2: A announces the request before it goes into the tunnel,
    // then answers.
    fd = connect_from("127.0.0.1", c.a_internal);
    ASSERT_GE(fd, 0);
    send_all(fd, hop_cluster::preamble(relay::unix_ms_now(), "127.0.0.9", 2) + hello_request);
    const auto announced = read_until(fd, 10s, closed);
    ::close(fd);
    ASSERT_EQ(announced.rfind(std::string(relay::hop_started_line) + "HTTP/1.1 200 ", 0), 0u)
        << announced;

    EXPECT_EQ(c.origin->requests(), before + 2);  // the good ones only
    const auto log = c.a->log();
    EXPECT_NE(log.find("refused (bad_hmac)"), std::string::npos) << log;
    EXPECT_EQ(log.find(cluster_secret), std::string::npos);
    EXPECT_EQ(log.find(bad_mac.substr(bad_mac.size() - 66, 64)), std::string::npos);
    EXPECT_NE(c.a->admin_get("/metrics").find("relay_cluster_hops_total{outcome=\"refused\"}"),
              std::string::npos);
}

// With the owner gone: cluster_failover_test.cpp (502 at once without a
// lease; with one, the request waits for the tunnel to come back).

}  // namespace
}  // namespace tunnel::test
