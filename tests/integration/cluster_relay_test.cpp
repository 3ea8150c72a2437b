// Two real `tunnel relay` processes with a `cluster:` section on one real
// redis-server: a name published on A is in the route table as A's and is
// refused on B; after Redis restarts empty, A claims its routes again.
#include <atomic>
#include <chrono>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cluster/redis_address.hpp"
#include "core/asio.hpp"
#include "relay/relay_config.hpp"
#include "relay/relay_server.hpp"
#include "support/eventually.hpp"
#include "support/net.hpp"
#include "support/process.hpp"
#include "support/redis_fixture.hpp"
#include "support/relay_fixture.hpp"
#include "support/tcp_servers.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

TEST(ClusterRelays, ANamePublishedOnOneRelayIsRefusedOnTheOther) {
    auto redis = redis_fixture::start();
    ASSERT_TRUE(redis) << redis.error().message;
    auto dir = temp_dir::create("tunnel-cluster");
    ASSERT_TRUE(dir);
    const auto secret = dir->file("cluster.secret");
    ASSERT_TRUE(write_text_file(secret, "0123456789abcdef0123456789abcdef-cluster", 0600));

    relay_options oa;
    oa.extra_yaml = cluster_yaml(*redis, "relay-a", secret);
    auto a = relay_fixture::start(oa);
    ASSERT_TRUE(a) << a.error().message;
    relay_options ob;
    ob.extra_yaml = cluster_yaml(*redis, "relay-b", secret);
    ob.share_secret_of = a->secret_path();
    auto b = relay_fixture::start(ob);
    ASSERT_TRUE(b) << b.error().message;

    auto origin = http_origin::start("hello");
    ASSERT_TRUE(origin) << origin.error().message;
    auto token = a->mint("acme", "svc");
    ASSERT_TRUE(token) << token.error().message;

    auto on_a = a->connect(*token, {{"svc", (*origin)->port()}});
    ASSERT_TRUE(on_a) << on_a.error().message;
    ASSERT_EQ(client_events("published", on_a->log()), 1) << on_a->log() << a->log();
    // The route table says relay-a holds it, with its internal address.
    ASSERT_TRUE(eventually(
        [&] {
            return redis->cli({"HGET", "tunnel:route:acme/svc", "node"}) == "relay-a";
        },
        3s))
        << a->log();
    EXPECT_EQ(redis->cli({"HGET", "tunnel:route:acme/svc", "address"}).rfind("127.0.0.1:", 0), 0u);
    EXPECT_EQ(redis->cli({"HGET", "tunnel:route:acme/svc", "attached"}), "1");

    // The same tenant's tunnel on B: the usual refusal.
    auto on_b = b->connect(*token, {{"svc", (*origin)->port()}});
    ASSERT_TRUE(on_b) << on_b.error().message;
    EXPECT_EQ(client_events("published", on_b->log()), 0) << on_b->log();
    EXPECT_GE(client_events("refused", on_b->log()), 1) << on_b->log();
    EXPECT_NE(b->log().find("held by another tunnel's lease on relay relay-a"), std::string::npos)
        << b->log();
    EXPECT_EQ(redis->cli({"HGET", "tunnel:route:acme/svc", "node"}), "relay-a");

    // Redis restarts empty: A keeps serving, then claims its route again.
    redis->stop();
    auto r =
        http_request(a->public_port(),
                     "GET /t/acme/svc/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 200) << r->raw;
    ASSERT_TRUE(redis->restart());
    EXPECT_TRUE(eventually(
        [&] {
            return redis->cli({"HGET", "tunnel:route:acme/svc", "node"}) == "relay-a";
        },
        8s))
        << a->log();
}

// In-process (relay_server::create): the checks at start, and a relay whose
// Redis is away starts, serves and shuts down cleanly.
core::result<relay::relay_config> cluster_dev_config(const temp_dir& dir, const std::string& redis,
                                                     const std::string& cluster_secret) {
    if (auto w =
            write_text_file(dir.file("jwt.secret"), "cluster-relay-test-secret-0123456789\n", 0600);
        !w)
        return tl::unexpected(w.error());
    if (auto w = write_text_file(dir.file("cluster.secret"), cluster_secret, 0600); !w)
        return tl::unexpected(w.error());
    auto config = relay::dev_config("127.0.0.1:0", "127.0.0.1:0", dir.file("jwt.secret"));
    if (!config) return config;
    auto address = cluster::parse_redis_address(redis);
    if (!address) return tl::unexpected(address.error());
    relay::cluster_config c;
    c.redis = *address;
    c.node = "relay-a";
    c.internal_host = "127.0.0.1";
    auto internal = unused_port();  // the relay binds it now (the proxy hop)
    if (!internal) return tl::unexpected(internal.error());
    c.internal_port = *internal;
    c.secret_file = dir.file("cluster.secret");
    config->cluster = c;
    return config;
}

TEST(ClusterRelays, AShortClusterSecretStopsTheStart) {
    auto dir = temp_dir::create("tunnel-cluster");
    ASSERT_TRUE(dir);
    auto config = cluster_dev_config(*dir, "redis://127.0.0.1:1", "short");
    ASSERT_TRUE(config) << config.error().message;
    asio::io_context io;
    auto server = relay::relay_server::create(io, std::move(*config));
    ASSERT_FALSE(server);
    EXPECT_NE(server.error().message.find("cluster.secret_file"), std::string::npos)
        << server.error().message;
}

TEST(ClusterRelays, ARelayWhoseRedisIsAwayServesAndShutsDownCleanly) {
    auto dir = temp_dir::create("tunnel-cluster");
    ASSERT_TRUE(dir);
    auto port = unused_port();  // nobody listens there
    ASSERT_TRUE(port);
    auto config = cluster_dev_config(*dir, "redis://127.0.0.1:" + std::to_string(*port),
                                     "0123456789abcdef0123456789abcdef-cluster");
    ASSERT_TRUE(config) << config.error().message;
    asio::io_context io;
    auto server = relay::relay_server::create(io, std::move(*config));
    ASSERT_TRUE(server) << server.error().message;
    (*server)->start();
    std::atomic<bool> returned{false};
    std::thread runner([&] {
        io.run();
        returned = true;
    });
    EXPECT_TRUE(wait_for_port((*server)->public_port(), 5s));
    auto health =
        http_request((*server)->admin_port(),
                     "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    EXPECT_TRUE(health && health->status == 200);
    std::this_thread::sleep_for(300ms);  // a few reconnect attempts
    const auto start = steady::now();
    (*server)->shutdown({});
    EXPECT_TRUE(eventually([&] { return returned.load(); }, 5s))
        << "io_context::run() did not return after shutdown()";
    EXPECT_LT(steady::now() - start, 3s);
    if (!returned) io.stop();
    runner.join();
}

}  // namespace
}  // namespace tunnel::test
