// Usage analytics of a relay cluster (docs/cluster.md "Usage analytics"):
// real `tunnel relay` processes with `cluster:` and `usage:` on one real
// redis-server. Both relays count traffic of one tenant/name and GET
// /api/v1/usage on either reports the sum; killed and restarted relays lose
// none of what they flushed; while Redis is away a relay keeps its counts and
// adds them when it is back.
#include <chrono>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/eventually.hpp"
#include "support/net.hpp"
#include "support/process.hpp"
#include "support/redis_fixture.hpp"
#include "support/relay_fixture.hpp"
#include "support/tcp_servers.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

const std::string admin_token = "cluster-usage-admin-token-0123456789";

// A relay of the cluster counting usage (flushed every 100 ms), leases off
// so a name a tunnel leaves is free at once for the other relay.
relay_options clustered(const redis_fixture& redis, const std::string& node,
                        const std::string& secret_file) {
    relay_options o;
    o.admin_token = admin_token;
    auto port = unused_port();
    o.extra_yaml = fmt::format(
        "cluster:\n  redis: {}\n  node: {}\n  internal_listen: 127.0.0.1:{}\n  secret_file: "
        "{}\nusage:\n  flush_interval: 100ms\nleases:\n  grace: 0s\n",
        redis.url(), node, port ? *port : 1, secret_file);
    return o;
}

std::string call(std::uint16_t port) {
    auto r = http_request(
        port, "GET /t/acme/svc/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    return r ? std::to_string(r->status) + " " + r->body : r.error().message;
}

// acme/svc's totals as `relay` reports them (nullopt: no answer or no row).
std::optional<json> svc_totals(const relay_fixture& relay) {
    auto r = relay.admin_request("/api/v1/usage?tenant=acme");
    if (!r || r->status != 200) return std::nullopt;
    auto j = json::parse(r->body, nullptr, false);
    if (!j.is_object() || !j.contains("totals")) return std::nullopt;
    for (const auto& t : j["totals"])
        if (t.value("name", "") == "svc") return t;
    return std::nullopt;
}

std::uint64_t svc_requests(const relay_fixture& relay) {
    const auto t = svc_totals(relay);
    return t ? (*t)["requests"].get<std::uint64_t>() : 0;
}

// acme's tunnel publishing svc on a relay, to an origin answering "hello".
struct svc_tunnel {
    std::unique_ptr<http_origin> origin;
    std::optional<relay_client> client;
};

void publish_svc(relay_fixture& relay, svc_tunnel& out) {
    auto origin = http_origin::start("hello");
    ASSERT_TRUE(origin) << origin.error().message;
    out.origin = std::move(*origin);
    auto token = relay.mint("acme", "svc");
    ASSERT_TRUE(token) << token.error().message;
    auto client = relay.connect(*token, {{"svc", out.origin->port()}});
    ASSERT_TRUE(client) << client.error().message;
    ASSERT_EQ(client_events("published", client->log()), 1) << client->log() << relay.log();
    out.client.emplace(std::move(*client));
}

struct cluster_setup {
    std::optional<redis_fixture> redis;
    std::optional<temp_dir> dir;
    std::string secret;

    void start() {
        auto r = redis_fixture::start();
        ASSERT_TRUE(r) << r.error().message;
        redis.emplace(std::move(*r));
        auto d = temp_dir::create("tunnel-cluster-usage");
        ASSERT_TRUE(d);
        dir.emplace(std::move(*d));
        secret = dir->file("cluster.secret");
        ASSERT_TRUE(write_text_file(secret, "0123456789abcdef0123456789abcdef-usage", 0600));
    }
};

TEST(ClusterUsage, EveryRelayReportsTheSumAndRestartsLoseNothingFlushed) {
    cluster_setup c;
    ASSERT_NO_FATAL_FAILURE(c.start());
    auto a = relay_fixture::start(clustered(*c.redis, "relay-a", c.secret));
    ASSERT_TRUE(a) << a.error().message;
    auto ob = clustered(*c.redis, "relay-b", c.secret);
    ob.share_secret_of = a->secret_path();
    auto b = relay_fixture::start(ob);
    ASSERT_TRUE(b) << b.error().message;
    auto origin = http_origin::start("hello");
    ASSERT_TRUE(origin) << origin.error().message;
    auto token = a->mint("acme", "svc");
    ASSERT_TRUE(token) << token.error().message;

    {  // The tunnel on A: 4 requests to A, 2 to B (over the hop: A counts them).
        auto on_a = a->connect(*token, {{"svc", (*origin)->port()}});
        ASSERT_TRUE(on_a) << on_a.error().message;
        ASSERT_EQ(client_events("published", on_a->log()), 1) << on_a->log() << a->log();
        for (int i = 0; i < 4; ++i) EXPECT_EQ(call(a->public_port()), "200 hello");
        ASSERT_TRUE(eventually(
            [&] {
                return c.redis->cli({"HGET", "tunnel:route:acme/svc", "attached"}) == "1";
            },
            3s));
        ASSERT_TRUE(eventually([&] { return call(b->public_port()) == "200 hello"; }, 3s))
            << b->log();
        EXPECT_EQ(call(b->public_port()), "200 hello");
    }
    // The tunnel left (no lease): the same name on B, 3 requests there.
    ASSERT_TRUE(eventually(
        [&] {
            return c.redis->cli({"EXISTS", "tunnel:route:acme/svc"}) == "0";
        },
        5s))
        << a->log();
    std::optional<relay_client> on_b;
    ASSERT_TRUE(eventually(
        [&] {
            auto client = b->connect(*token, {{"svc", (*origin)->port()}});
            if (!client || client_events("published", client->log()) != 1) return false;
            on_b.emplace(std::move(*client));
            return true;
        },
        5s))
        << b->log();
    for (int i = 0; i < 3; ++i) EXPECT_EQ(call(b->public_port()), "200 hello");

    // Both relays report the cluster's numbers: 6 counted on A, 3 on B.
    ASSERT_TRUE(eventually([&] { return svc_requests(*a) == 9; }, 5s))
        << a->admin_get("/api/v1/usage?tenant=acme") << a->log();
    ASSERT_TRUE(eventually([&] { return svc_requests(*b) == 9; }, 5s))
        << b->admin_get("/api/v1/usage?tenant=acme");
    const auto totals = svc_totals(*b);
    ASSERT_TRUE(totals);
    EXPECT_EQ((*totals)["errors"], 0);
    EXPECT_GT((*totals)["bytes_out"].get<std::uint64_t>(), 9u * 5);
    EXPECT_GT((*totals)["tunnel_hours"].get<double>(), 0.0);
    EXPECT_TRUE((*totals)["p95_ms"].is_number()) << *totals;
    // In Redis: hourly hashes that both relays added to, indexed per tenant.
    const auto members = c.redis->cli({"ZRANGE", "tunnel:usage:index:acme", "0", "-1"});
    ASSERT_NE(members.find(":svc"), std::string::npos) << members;
    const auto hour = members.substr(0, members.find(':'));
    const auto fields = c.redis->cli({"HKEYS", "tunnel:usage:" + hour + ":acme/svc"});
    EXPECT_NE(fields.find("seq:relay-a"), std::string::npos) << fields;
    EXPECT_NE(fields.find("seq:relay-b"), std::string::npos) << fields;
    EXPECT_GT(std::stoll(c.redis->cli({"TTL", "tunnel:usage:" + hour + ":acme/svc"})),
              89LL * 24 * 3600)
        << "the default retention is 90 days";
    // The CSV has the same totals.
    auto csv = a->admin_request("/api/v1/usage?tenant=acme&format=csv");
    ASSERT_TRUE(csv);
    EXPECT_NE(csv->body.find("total,acme,svc,9,"), std::string::npos) << csv->body;

    // Killed and restarted (SIGKILL): nothing that was flushed is lost.
    on_b.reset();
    ASSERT_TRUE(a->restart());
    EXPECT_EQ(svc_requests(*b), 9u);
    ASSERT_TRUE(b->restart());
    EXPECT_TRUE(eventually([&] { return svc_requests(*a) == 9 && svc_requests(*b) == 9; }, 5s))
        << a->admin_get("/api/v1/usage?tenant=acme");
}

TEST(ClusterUsage, CountsWaitWhileRedisIsAwayAndArriveWhenItIsBack) {
    cluster_setup c;
    ASSERT_NO_FATAL_FAILURE(c.start());
    auto a = relay_fixture::start(clustered(*c.redis, "relay-a", c.secret));
    ASSERT_TRUE(a) << a.error().message;
    svc_tunnel tunnel;
    ASSERT_NO_FATAL_FAILURE(publish_svc(*a, tunnel));
    EXPECT_EQ(call(a->public_port()), "200 hello");
    ASSERT_TRUE(eventually([&] { return svc_requests(*a) == 1; }, 5s)) << a->log();

    c.redis->stop();
    for (int i = 0; i < 5; ++i) EXPECT_EQ(call(a->public_port()), "200 hello");
    // The report needs Redis: 503, not a wrong number.
    auto away = a->admin_request("/api/v1/usage?tenant=acme");
    ASSERT_TRUE(away) << away.error().message;
    EXPECT_EQ(away->status, 503) << away->raw;
    EXPECT_NE(away->body.find("Redis"), std::string::npos) << away->body;
    ASSERT_TRUE(eventually(
        [&] { return a->log().find("cannot add counts to Redis") != std::string::npos; }, 5s))
        << a->log();

    // Back, empty (no persistence): what waited arrives.
    ASSERT_TRUE(c.redis->restart());
    EXPECT_TRUE(eventually([&] { return svc_requests(*a) == 5; }, 10s))
        << a->admin_get("/api/v1/usage?tenant=acme") << a->log();
    EXPECT_NE(a->log().find("the counts that waited were added"), std::string::npos) << a->log();
}

TEST(ClusterUsage, AGracefulStopAddsTheLastCounts) {
    cluster_setup c;
    ASSERT_NO_FATAL_FAILURE(c.start());
    auto o = clustered(*c.redis, "relay-a", c.secret);
    // Only the last flush (after the drain of a SIGTERM) can add them.
    const auto at = o.extra_yaml.find("flush_interval: 100ms");
    ASSERT_NE(at, std::string::npos);
    o.extra_yaml.replace(at, 21, "flush_interval: 1h");
    auto a = relay_fixture::start(o);
    ASSERT_TRUE(a) << a.error().message;
    svc_tunnel tunnel;
    ASSERT_NO_FATAL_FAILURE(publish_svc(*a, tunnel));
    for (int i = 0; i < 3; ++i) EXPECT_EQ(call(a->public_port()), "200 hello");
    EXPECT_EQ(c.redis->cli({"EXISTS", "tunnel:usage:index:acme"}), "0");

    EXPECT_EQ(a->process().terminate(std::chrono::seconds(10)), 0) << a->log();  // SIGTERM
    const auto members = c.redis->cli({"ZRANGE", "tunnel:usage:index:acme", "0", "-1"});
    ASSERT_NE(members.find(":svc"), std::string::npos) << members << a->log();
    const auto hour = members.substr(0, members.find(':'));
    EXPECT_EQ(c.redis->cli({"HGET", "tunnel:usage:" + hour + ":acme/svc", "requests"}), "3");
}

}  // namespace
}  // namespace tunnel::test
