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

#include "relay/hop_preamble.hpp"
#include "support/net.hpp"
#include "support/process.hpp"
#include "support/redis_fixture.hpp"
#include "support/relay_fixture.hpp"
#include "support/streaming_origin.hpp"
#include "support/tcp_servers.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

const std::string cluster_secret = "0123456789abcdef0123456789abcdef-cluster";

void send_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n <= 0) return;
        data.remove_prefix(static_cast<std::size_t>(n));
    }
}

// Reads until the peer closes, `stop` says enough, or the deadline; calls
// `seen` with the bytes so far after each read.
std::string read_until(int fd, std::chrono::milliseconds timeout, bool& closed,
                       const std::function<bool(const std::string&)>& stop = {}) {
    std::string raw;
    closed = false;
    const auto deadline = steady::now() + timeout;
    char buf[16384];
    for (;;) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
        if (left.count() <= 0) break;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            closed = true;
            break;
        }
        raw.append(buf, static_cast<std::size_t>(n));
        if (stop && stop(raw)) break;
    }
    return raw;
}

// Redis, relays A and B (one cluster, one secret), an origin, and a tunnel
// attached to A publishing acme/web, with B routing it to A.
struct hop_cluster {
    std::optional<redis_fixture> redis;
    std::optional<temp_dir> dir;
    std::uint16_t a_internal = 0;
    std::optional<relay_fixture> a;
    std::optional<relay_fixture> b;
    std::unique_ptr<streaming_origin> origin;
    std::optional<relay_client> tunnel;

    // Empty when all is up, else what failed.
    std::string start() {
        auto r = redis_fixture::start();
        if (!r) return r.error().message;
        redis.emplace(std::move(*r));
        auto d = temp_dir::create("tunnel-hop");
        if (!d) return d.error().message;
        dir.emplace(std::move(*d));
        const auto secret = dir->file("cluster.secret");
        if (!write_text_file(secret, cluster_secret, 0600)) return "cannot write the secret";
        auto pa = unused_port();
        auto pb = unused_port();
        if (!pa || !pb) return "no free port";
        a_internal = *pa;
        relay_options oa;
        oa.extra_yaml = cluster_yaml(*redis, "relay-a", secret, *pa);
        auto ra = relay_fixture::start(oa);
        if (!ra) return ra.error().message;
        a.emplace(std::move(*ra));
        relay_options ob;
        ob.extra_yaml = cluster_yaml(*redis, "relay-b", secret, *pb);
        ob.share_secret_of = a->secret_path();
        auto rb = relay_fixture::start(ob);
        if (!rb) return rb.error().message;
        b.emplace(std::move(*rb));
        auto o = streaming_origin::start();
        if (!o) return o.error().message;
        origin = std::move(*o);
        auto token = a->mint("acme", "web");
        if (!token) return token.error().message;
        auto c = a->connect(*token, {{"web", origin->port()}});
        if (!c) return c.error().message;
        tunnel.emplace(std::move(*c));
        // B hears of the claim (pub/sub) within moments.
        const auto until = steady::now() + 10s;
        while (steady::now() < until) {
            auto reply = get_via_b("/t/acme/web/hello");
            if (reply && reply->status == 200) return {};
            std::this_thread::sleep_for(50ms);
        }
        return "B never routed acme/web to A\n" + a->log() + b->log();
    }

    [[nodiscard]] core::result<http_reply> get_via_b(const std::string& target) const {
        return http_request(b->public_port(), "GET " + target +
                                                  " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: "
                                                  "close\r\n\r\n");
    }

    // A preamble signed with the cluster's secret, as relay-b would send it.
    static std::string preamble(std::int64_t unix_ms, const std::string& client_ip = "127.0.0.9") {
        relay::hop_signer keys(cluster_secret);
        relay::hop_preamble p{"relay-b", unix_ms, relay::new_hop_nonce(), "acme", "web",
                              client_ip, false};
        auto line = keys.sign(p);
        return line ? *line : std::string();
    }
};

const std::string hello_request =
    "GET /t/acme/web/hello HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

TEST(ClusterHop, ARequestToBIsServedByTheTunnelOnA) {
    hop_cluster c;
    const auto failed = c.start();
    ASSERT_TRUE(failed.empty()) << failed;

    // A caller on 127.0.0.2: the origin sees it, not B's address.
    int fd = connect_from("127.0.0.2", c.b->public_port());
    ASSERT_GE(fd, 0);
    send_all(fd,
             "GET /t/acme/web/headers HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: "
             "close\r\n\r\n");
    bool closed = false;
    const auto raw = read_until(fd, 10s, closed);
    ::close(fd);
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

    // A hop connection is bound to its route: another name is 421.
    fd = connect_from("127.0.0.1", c.a_internal);
    ASSERT_GE(fd, 0);
    send_all(fd, hop_cluster::preamble(relay::unix_ms_now()) +
                     "GET /t/acme/other/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    const auto other = read_until(fd, 10s, closed);
    ::close(fd);
    EXPECT_EQ(other.rfind("HTTP/1.1 421 ", 0), 0u) << other;

    EXPECT_EQ(c.origin->requests(), before + 1);  // the good one only
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
