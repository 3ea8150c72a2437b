// Kept requests delivered over the proxy hop after a graceful restart
// (docs/relay.md "What survives a restart", docs/cluster.md "The proxy
// hop"): a real redis-server, two real `tunnel relay` processes of one
// cluster, a real `tunnel connect` whose connection to relay A goes through
// a fault proxy, and an origin that records what reaches it. A request that
// waits on B for a leased name when B is stopped (SIGTERM) is kept in B's
// queue.state_file, its caller told 202; after B's restart the tunnel comes
// back to A, not B, and B delivers the kept request through A (the signed
// TUNNEL-HOP/2 hop), body and all, exactly once.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <functional>
#include <future>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/eventually.hpp"
#include "support/fault_proxy.hpp"
#include "support/net.hpp"
#include "support/process.hpp"
#include "support/recording_origin.hpp"
#include "support/redis_fixture.hpp"
#include "support/relay_fixture.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

const std::string cluster_secret = "0123456789abcdef0123456789abcdef-deferred";

int occurrences(const std::string& text, const std::string& what) {
    int n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

// Redis; relays A and B of one cluster (one JWT secret, one hop secret),
// both with leases, B with queue.state_file; an origin; and a tunnel
// publishing acme/web on A through a fault proxy (cut() and pass()).
class ClusterDeferred : public ::testing::Test {
  protected:
    void SetUp() override {
        auto r = redis_fixture::start();
        ASSERT_TRUE(r) << r.error().message;
        redis.emplace(std::move(*r));
        auto d = temp_dir::create("tunnel-deferred");
        ASSERT_TRUE(d) << d.error().message;
        dir.emplace(std::move(*d));
        const auto secret = dir->file("cluster.secret");
        ASSERT_TRUE(write_text_file(secret, cluster_secret, 0600));
        state_file = dir->file("queue.db");
        const std::string common = "leases: {grace: 30s}\n";
        relay_options oa;
        oa.extra_yaml =
            cluster_yaml(*redis, "relay-a", secret) + common + "queue: {max_wait: 20s}\n";
        auto ra = relay_fixture::start(oa);
        ASSERT_TRUE(ra) << ra.error().message;
        a.emplace(std::move(*ra));
        relay_options ob;
        ob.extra_yaml = cluster_yaml(*redis, "relay-b", secret) + common +
                        "queue: {max_wait: 20s, state_file: " + state_file + "}\n";
        ob.share_secret_of = a->secret_path();
        auto rb = relay_fixture::start(ob);
        ASSERT_TRUE(rb) << rb.error().message;
        b.emplace(std::move(*rb));
        auto p = fault_proxy::start(a->public_port());
        ASSERT_TRUE(p) << p.error().message;
        proxy = std::move(*p);
        auto token = a->mint("acme", "web");
        ASSERT_TRUE(token) << token.error().message;
        auto c = spawn_tunnel({"connect", fmt::format("ws://127.0.0.1:{}/v1/tunnel", proxy->port()),
                               "--token-file", a->token_file(*token), "--json", "--expose",
                               fmt::format("web=127.0.0.1:{}", origin.port()), "--connect-timeout",
                               "2s", "--keepalive", "1s"},
                              dir->path(), tunnel_log(), tunnel_log());
        ASSERT_TRUE(c) << c.error().message;
        tunnel.emplace(std::move(*c));
        ASSERT_TRUE(eventually([&] { return events("published") >= 1; }, 20s)) << logs();
        // B hears of the claim and routes the name to A over the hop.
        ASSERT_TRUE(eventually(
            [&] {
                auto w = http_request(b->public_port(), get("/warm"));
                return w && w->status == 200;
            },
            10s))
            << logs();
    }

    static std::string get(const std::string& path) {
        return fmt::format("GET /t/acme/web{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                           path);
    }

    // Cuts the tunnel's connection to A (RST both ways) and keeps new ones
    // from getting through until pass(): A sees the drop at once, its lease
    // holds the name with no tunnel, and the cluster hears so.
    void cut() {
        proxy->set_mode(fault_mode::drop);
        proxy->reset_all();
        ASSERT_TRUE(a->wait_published("acme", "web", 10s, false)) << logs();
        ASSERT_TRUE(eventually(
            [&] {
                return redis->cli({"HGET", "tunnel:route:acme/web", "attached"}) == "0";
            },
            10s))
            << redis->cli({"HGETALL", "tunnel:route:acme/web"}) << "\n"
            << logs();
        std::this_thread::sleep_for(300ms);  // B's mirror hears it (pub/sub)
    }
    void pass() { proxy->set_mode(fault_mode::pass); }

    std::string tunnel_log() const { return dir->file("tunnel.log"); }
    int events(const std::string& what) const {
        int n = 0;
        std::istringstream lines(read_text_file(tunnel_log()).value_or(""));
        for (std::string line; std::getline(lines, line);) {
            auto j = nlohmann::json::parse(line, nullptr, false);
            if (j.is_object() && j.value("event", "") == what) ++n;
        }
        return n;
    }
    std::string logs() const {
        return "---- relay A\n" + a->log() + "\n---- relay B\n" + b->log() + "\n---- tunnel\n" +
               read_text_file(tunnel_log()).value_or("");
    }

    recording_origin origin;
    std::optional<redis_fixture> redis;
    std::optional<temp_dir> dir;
    std::string state_file;
    std::optional<relay_fixture> a;
    std::optional<relay_fixture> b;
    std::unique_ptr<fault_proxy> proxy;
    std::optional<child_process> tunnel;
};

// The POST waits on B for the lease's tunnel; B stops (202, kept); after B's
// restart the tunnel attaches to A again, and B delivers the POST through A
// once: the origin sees it once, with its body, and never again.
TEST_F(ClusterDeferred, AKeptRequestGoesOverTheHopToTheRelayHoldingTheTunnelOnce) {
    cut();
    const std::string post =
        "POST /t/acme/web/kept HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
        "Content-Length: 11\r\n\r\nhello there";
    auto posted = std::async(std::launch::async, [port = b->public_port(), post] {
        return http_request(port, post, 40s);
    });
    std::this_thread::sleep_for(700ms);
    ASSERT_EQ(posted.wait_for(0s), std::future_status::timeout)
        << "answered instead of waiting for the lease's tunnel\n"
        << logs();
    b->process().signal(SIGTERM);
    auto r = posted.get();
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 202) << r->raw << "\n" << logs();
    EXPECT_NE(r->head.find("Tunnel-Deferred: 1"), std::string::npos) << r->head;
    ASSERT_TRUE(b->process().wait(10s)) << "B did not stop";
    EXPECT_EQ(origin.count("POST /kept"), 0);

    auto up = b->restart();
    ASSERT_TRUE(up) << up.error().message;
    // B has only its kept request for the name: it waits until the tunnel
    // is back (on A).
    std::this_thread::sleep_for(1s);
    EXPECT_EQ(origin.count("POST /kept"), 0) << "delivered with no tunnel anywhere";
    const int attached_before = events("attached");
    pass();  // the client attaches to A again with its lease
    ASSERT_TRUE(a->wait_published("acme", "web", 20s)) << logs();
    EXPECT_GT(events("attached"), attached_before) << logs();
    EXPECT_FALSE(b->wait_published("acme", "web", 100ms)) << "the tunnel went to B";

    ASSERT_TRUE(eventually([&] { return origin.count("POST /kept") == 1; }, 20s)) << logs();
    EXPECT_EQ(origin.body_of("POST /kept").value_or("(none)"), "hello there");
    const std::string delivered =
        "deferred request for acme/web (saved before the restart) delivered: 200";
    ASSERT_TRUE(eventually([&] { return occurrences(b->log(), delivered) == 1; }, 5s)) << logs();
    // Delivered once: not again after its answer, nor by A on its own.
    std::this_thread::sleep_for(2s);
    EXPECT_EQ(origin.count("POST /kept"), 1) << logs();
    // The kept row is gone: a restart of B does not deliver it again.
    b->process().signal(SIGTERM);
    ASSERT_TRUE(b->process().wait(10s)) << "B did not stop";
    auto again = b->restart();
    ASSERT_TRUE(again) << again.error().message;
    std::this_thread::sleep_for(1500ms);
    EXPECT_EQ(origin.count("POST /kept"), 1) << logs();
    // B's log goes on across its restarts: one replay, one delivery.
    EXPECT_EQ(occurrences(b->log(), "deferred requests from before the restart wait"), 1)
        << "the delivered row was kept\n"
        << logs();
    EXPECT_EQ(occurrences(b->log(), delivered), 1) << logs();
}

}  // namespace
}  // namespace tunnel::test
