// Relays that die while their tunnels carry traffic (docs/cluster.md
// "Leases across relays"): real `tunnel relay` processes on one real
// redis-server, a real `tunnel connect` with --relay for the failover, and
// callers that keep sending while the relay holding the tunnel is killed
// with SIGKILL. The tunnel re-attaches to another relay with its lease and
// takes its names back; requests that arrived meanwhile waited and are
// delivered, each exactly once.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "support/net.hpp"
#include "support/process.hpp"
#include "support/redis_fixture.hpp"
#include "support/relay_fixture.hpp"
#include "support/tcp_servers.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

const std::string cluster_secret = "0123456789abcdef0123456789abcdef-failover";

// Redis and N relays of one cluster (one JWT secret, one hop secret), an
// origin that counts what reaches it, and a tunnel attached to the first
// relay with the others as its --relay failovers, publishing acme/web.
struct cluster_of {
    std::optional<redis_fixture> redis;
    std::optional<temp_dir> dir;
    std::vector<relay_fixture> relays;
    std::unique_ptr<http_origin> origin;
    std::optional<relay_client> tunnel;

    std::string start(std::size_t count, const std::string& extra = {}) {
        auto r = redis_fixture::start();
        if (!r) return r.error().message;
        redis.emplace(std::move(*r));
        auto d = temp_dir::create("tunnel-failover");
        if (!d) return d.error().message;
        dir.emplace(std::move(*d));
        const auto secret = dir->file("cluster.secret");
        if (!write_text_file(secret, cluster_secret, 0600)) return "cannot write the secret";
        for (std::size_t i = 0; i < count; ++i) {
            auto port = unused_port();
            if (!port) return "no free port";
            relay_options o;
            o.extra_yaml = cluster_yaml(*redis, std::string("relay-") + static_cast<char>('a' + i),
                                        secret, *port) +
                           extra;
            if (!relays.empty()) o.share_secret_of = relays.front().secret_path();
            auto relay = relay_fixture::start(o);
            if (!relay) return relay.error().message;
            relays.push_back(std::move(*relay));
        }
        auto o = http_origin::start("served\n");
        if (!o) return o.error().message;
        origin = std::move(*o);
        auto token = relays.front().mint("acme", "web");
        if (!token) return token.error().message;
        std::vector<std::string> failover;
        for (std::size_t i = 1; i < relays.size(); ++i)
            failover.insert(failover.end(), {"--relay", relays[i].attach_url()});
        auto c = relays.front().connect(*token, {{"web", origin->port()}}, true, failover);
        if (!c) return c.error().message;
        tunnel.emplace(std::move(*c));
        // Every other relay hears of the claim and routes the name (the hop).
        for (std::size_t i = 1; i < relays.size(); ++i) {
            const auto until = steady::now() + 10s;
            for (;;) {
                auto reply = get(i, "/t/acme/web/warm");
                if (reply && reply->status == 200) break;
                if (steady::now() >= until)
                    return "relay " + std::to_string(i) + " never routed acme/web\n" + logs();
                std::this_thread::sleep_for(50ms);
            }
        }
        return {};
    }

    [[nodiscard]] core::result<http_reply> get(std::size_t relay, const std::string& target,
                                               std::chrono::milliseconds timeout = 5s) const {
        return http_request(
            relays[relay].public_port(),
            "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", timeout);
    }

    std::string logs() const {
        std::string out;
        for (const auto& r : relays) out += r.log() + "\n----\n";
        if (tunnel) out += tunnel->log();
        return out;
    }
};

struct outcome {
    int status = 0;
    steady::duration took{};
};

// `count` callers on `relay`, each sending `each` requests one after another
// (a new connection each), started now; their statuses.
std::vector<outcome> callers(const cluster_of& c, std::size_t relay, int count, int each) {
    std::vector<outcome> out(static_cast<std::size_t>(count * each));
    std::vector<std::thread> threads;
    for (int t = 0; t < count; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < each; ++i) {
                const auto t0 = steady::now();
                auto r = c.get(relay, "/t/acme/web/r" + std::to_string(t * each + i), 40s);
                auto& o = out[static_cast<std::size_t>(t * each + i)];
                o.status = r ? r->status : -1;
                o.took = steady::now() - t0;
                std::this_thread::sleep_for(20ms);
            }
        });
    for (auto& th : threads) th.join();
    return out;
}

std::size_t count_ok(const std::vector<outcome>& v) {
    std::size_t n = 0;
    for (const auto& o : v) n += o.status == 200 ? 1 : 0;
    return n;
}

std::string statuses(const std::vector<outcome>& v) {
    std::string s;
    for (const auto& o : v)
        s += std::to_string(o.status) + "/" +
             std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(o.took).count()) +
             "ms ";
    return s;
}

class ClusterFailover : public ::testing::Test {};

// `relays` relays with the tunnel on the first; it is killed with SIGKILL
// while 4 callers send 5 requests each to relay `via`. Every request must be
// answered 200 and reach the origin exactly once: none lost, none twice.
std::vector<outcome> kill_the_owner_under_load(cluster_of& c, std::size_t relays, std::size_t via) {
    const auto up = c.start(relays);
    EXPECT_EQ(up, "") << up;
    if (!up.empty()) return {};
    const int before = c.origin->requests();
    c.relays[0].process().signal(SIGKILL);
    auto got = callers(c, via, 4, 5);
    EXPECT_EQ(count_ok(got), got.size()) << statuses(got) << "\n" << c.logs();
    EXPECT_EQ(c.origin->requests() - before, static_cast<int>(got.size())) << statuses(got);
    return got;
}

// Two relays: the tunnel is on A, callers use B. A dies; the tunnel comes to
// B with its lease, and every request sent to B meanwhile is served once.
TEST_F(ClusterFailover, ATunnelTakesItsLeaseToTheNextRelayAndNoRequestIsLost) {
    cluster_of c;
    const auto got = kill_the_owner_under_load(c, 2, 1);
    ASSERT_FALSE(got.empty());
    // The tunnel is attached to B now, with its lease (B took it over).
    EXPECT_NE(c.relays[1].log().find("took over a lease held by another relay"), std::string::npos)
        << c.relays[1].log();
    EXPECT_TRUE(c.relays[1].wait_published("acme", "web", 5s)) << c.logs();
    std::fprintf(
        stderr, "[ failover ] first request after the kill: %lld ms; %s\n",
        static_cast<long long>(
            std::chrono::duration_cast<std::chrono::milliseconds>(got.front().took).count()),
        statuses(got).c_str());
}

// Three relays: the tunnel is on A, callers use C. A dies; the tunnel moves
// to B; C's waiting requests go to B over the hop.
TEST_F(ClusterFailover, RequestsWaitingOnAThirdRelayFollowTheTunnel) {
    cluster_of c;
    ASSERT_FALSE(kill_the_owner_under_load(c, 3, 2).empty());
    EXPECT_TRUE(c.relays[1].wait_published("acme", "web", 5s)) << c.logs();
    EXPECT_FALSE(c.relays[2].wait_published("acme", "web", 200ms)) << "the tunnel went to C";
}

// Redis goes away: both relays keep serving the routes they know (B keeps
// proxying to A); when a fresh, empty Redis comes back on the same port, A
// claims its routes again and B rebuilds its mirror from it.
TEST_F(ClusterFailover, WithRedisAwayKnownRoutesServeAndTheRelaysResynchronise) {
    cluster_of c;
    const auto up = c.start(2);
    ASSERT_EQ(up, "") << up;
    c.redis->stop();
    for (int i = 0; i < 10; ++i) {
        auto a = c.get(0, "/t/acme/web/a" + std::to_string(i));
        auto b = c.get(1, "/t/acme/web/b" + std::to_string(i));
        ASSERT_TRUE(a && b);
        EXPECT_EQ(a->status, 200) << a->raw;
        EXPECT_EQ(b->status, 200) << b->raw;
        std::this_thread::sleep_for(50ms);
    }
    auto back = c.redis->restart();
    ASSERT_TRUE(back) << back.error().message;
    // A's claim is in the new Redis, naming A (within the reconnect backoff).
    const auto until = steady::now() + 10s;
    std::string node;
    while (steady::now() < until) {
        node = c.redis->cli({"HGET", "tunnel:route:acme/web", "node"});
        if (node == "relay-a") break;
        std::this_thread::sleep_for(100ms);
    }
    EXPECT_EQ(node, "relay-a") << c.logs();
    EXPECT_EQ(c.redis->cli({"HGET", "tunnel:route:acme/web", "attached"}), "1");
    auto b = c.get(1, "/t/acme/web/after");
    ASSERT_TRUE(b);
    EXPECT_EQ(b->status, 200) << b->raw;
    EXPECT_NE(c.relays[0].log().find("claimed this relay's 1 routes again in Redis"),
              std::string::npos)
        << c.relays[0].log();
}

// A relay that is gone while no lease holds the name: callers are told at
// once (502 with Retry-After), not held.
TEST_F(ClusterFailover, WithoutALeaseADeadOwnerIsA502AtOnce) {
    cluster_of c;
    const auto up = c.start(2, "leases: {grace: 0s}\n");
    ASSERT_EQ(up, "") << up;
    // The relay and its tunnel die together: A is frozen first so that it
    // never sees its tunnel go. A live relay whose tunnel drops releases a
    // name without a lease at once (docs/cluster.md), and B then answers it
    // 503 tunnel_offline: another case than this one.
    c.relays[0].process().signal(SIGSTOP);
    c.tunnel->process().signal(SIGKILL);  // it must not attach again for this test
    (void)c.tunnel->process().wait(5s);
    c.relays[0].process().signal(SIGKILL);  // no goodbye: its claim stays in Redis a while
    (void)c.relays[0].process().wait(5s);
    const auto t0 = steady::now();
    auto r = c.get(1, "/t/acme/web/x", 10s);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 502) << r->raw;
    EXPECT_NE(r->head.find("Retry-After: 5"), std::string::npos) << r->head;
    EXPECT_NE(r->body.find("relay-a"), std::string::npos) << r->body;
    EXPECT_LT(steady::now() - t0, 3s);
}

// A lease holds the name but its tunnel never comes back: the request waits
// on B for queue.max_wait, then 503 with Retry-After; it never reached an
// origin.
TEST_F(ClusterFailover, ALeasedNameWhoseTunnelNeverReturnsWaitsThen503) {
    cluster_of c;
    const auto up = c.start(2, "leases: {grace: 30s}\nqueue: {max_wait: 2s}\n");
    ASSERT_EQ(up, "") << up;
    const int before = c.origin->requests();
    c.tunnel->process().signal(SIGKILL);
    (void)c.tunnel->process().wait(5s);
    c.relays[0].process().signal(SIGKILL);
    (void)c.relays[0].process().wait(5s);
    const auto t0 = steady::now();
    auto r = c.get(1, "/t/acme/web/x", 10s);
    const auto took = steady::now() - t0;
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 503) << r->raw;
    EXPECT_NE(r->head.find("Retry-After:"), std::string::npos) << r->head;
    EXPECT_NE(r->body.find("queue_timeout"), std::string::npos) << r->body;
    EXPECT_GE(took, 1900ms);
    EXPECT_LT(took, 5s);
    EXPECT_EQ(c.origin->requests(), before);
}

}  // namespace
}  // namespace tunnel::test
