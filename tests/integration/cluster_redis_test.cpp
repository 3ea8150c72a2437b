// The Redis layer of the relay cluster against a real redis-server
// (tests/support/redis_fixture): the client (commands, timeouts, reconnect,
// AUTH, sentinel), the route table, revocations over pub/sub and shared
// rate-limit buckets.
#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

#include <gtest/gtest.h>

#include "cluster/redis_client.hpp"
#include "cluster/revocation_list.hpp"
#include "cluster/route_table.hpp"
#include "cluster/shared_bucket.hpp"
#include "core/asio.hpp"
#include "core/spawn.hpp"
#include "support/redis_fixture.hpp"

namespace tunnel::cluster {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// g++ 12: no temporaries in a co_await's full expression (ARCHITECTURE §3):
// the awaitable is made first, then awaited.
#define AWAIT(var, ...)          \
    auto var##_op = __VA_ARGS__; \
    auto var = co_await std::move(var##_op)

// Runs `task` on a fresh io_context (two threads, as a relay's workers)
// until no work is left: the task stops the clients it made, so their
// supervisors end too. Fails the test when that takes longer than `limit`.
void run_async(std::function<asio::awaitable<void>()> task, std::chrono::seconds limit = 10s) {
    asio::io_context io;
    std::atomic<bool> done{false};
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            auto work = task();
            co_await std::move(work);
            done = true;
        },
        [](std::exception_ptr e) {
            if (!e) return;
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                ADD_FAILURE() << "the test coroutine threw: " << ex.what();
            }
        });
    const auto start = steady::now();
    std::thread helper([&] { io.run_for(limit); });
    io.run_for(limit);
    helper.join();
    EXPECT_TRUE(done) << "the test did not finish within " << limit.count() << " s";
    EXPECT_LT(steady::now() - start, limit)
        << "work was left after the test (a client not stopped?)";
}

asio::awaitable<void> pause(std::chrono::milliseconds d) {
    asio::steady_timer t(co_await asio::this_coro::executor);
    t.expires_after(d);
    co_await t.async_wait(asio::use_awaitable);
}

std::shared_ptr<redis_client> client_for(const asio::any_io_executor& ex, const std::string& url,
                                         redis_options options = {}) {
    auto address = parse_redis_address(url);
    EXPECT_TRUE(address) << address.error().message;
    options.reconnect.base = 20ms;
    options.reconnect.cap = 200ms;
    auto c = redis_client::create(ex, *address, options);
    c->start();
    return c;
}

TEST(RedisClient, SendsCommandsAndReturnsRepliesAsValues) {
    auto redis = test::redis_fixture::start();
    ASSERT_TRUE(redis) << redis.error().message;
    run_async([&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto c = client_for(ex, redis->url());
        const std::string binary("a\0b\r\nc", 6);
        AWAIT(set, c->command({"SET", "k", binary}));
        EXPECT_TRUE(set && set->is_ok()) << (set ? describe(*set) : set.error().message);
        AWAIT(get, c->command({"GET", "k"}));
        EXPECT_TRUE(get && get->is_string() && get->text == binary);
        AWAIT(missing, c->command({"GET", "nope"}));
        EXPECT_TRUE(missing && missing->is_nil());
        AWAIT(n, c->command({"INCRBY", "n", "41"}));
        EXPECT_TRUE(n && n->is_integer() && n->integer == 41);
        AWAIT(ignored3, c->command({"RPUSH", "l", "x", "y"}));
        (void)ignored3;
        AWAIT(list, c->command({"LRANGE", "l", "0", "-1"}));
        EXPECT_TRUE(list && list->is_array() && list->elements.size() == 2 &&
                    list->elements[1].text == "y");
        AWAIT(wrong, c->command({"INCR", "k"}));
        EXPECT_TRUE(wrong && wrong->is_error() && wrong->text.starts_with("ERR"));
        // Many in flight at once, in order.
        for (int i = 0; i < 200; ++i) {
            AWAIT(pushed, c->command({"RPUSH", "seq", std::to_string(i)}));
            EXPECT_TRUE(pushed);
        }
        AWAIT(len, c->command({"LLEN", "seq"}));
        EXPECT_TRUE(len && len->integer == 200);
        c->stop();
    });
    EXPECT_EQ(redis->cli({"GET", "n"}), "41");
}

TEST(RedisClient, ACommandWithoutAReplyTimesOutAndTheClientRecovers) {
    auto redis = test::redis_fixture::start();
    ASSERT_TRUE(redis) << redis.error().message;
    run_async([&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto c = client_for(ex, redis->url());
        const auto start = steady::now();
        // BLPOP on an empty list with no timeout: Redis never answers.
        AWAIT(blocked, c->command({"BLPOP", "empty", "0"}, 300ms));
        const auto took = steady::now() - start;
        EXPECT_FALSE(blocked);
        if (!blocked) {
            EXPECT_EQ(blocked.error().code, core::errc::timeout);
        }
        EXPECT_GE(took, 290ms);
        EXPECT_LT(took, 1500ms);
        // The timed-out connection is replaced; the next command works.
        AWAIT(ping, c->command({"PING"}, 2000ms));
        EXPECT_TRUE(ping && ping->text == "PONG")
            << (ping ? describe(*ping) : ping.error().message);
        EXPECT_EQ(c->connections(), 2u);
        c->stop();
    });
}

TEST(RedisClient, ReconnectsAfterRedisRestarts) {
    auto redis = test::redis_fixture::start();
    ASSERT_TRUE(redis) << redis.error().message;
    run_async([&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto c = client_for(ex, redis->url());
        AWAIT(first, c->command({"SET", "before", "1"}));
        EXPECT_TRUE(first && first->is_ok());
        redis->stop();
        // While Redis is down a command fails within its deadline: sent on
        // the dead connection before the client noticed (disconnected), or
        // waiting for a new one (connection_failed).
        const auto start = steady::now();
        AWAIT(down, c->command({"GET", "before"}, 300ms));
        EXPECT_FALSE(down);
        EXPECT_LT(steady::now() - start, 1500ms);
        AWAIT(still_down, c->command({"GET", "before"}, 300ms));
        EXPECT_FALSE(still_down);
        if (!still_down) {
            EXPECT_EQ(still_down.error().code, core::errc::connection_failed)
                << still_down.error().message;
            EXPECT_NE(still_down.error().message.find("unreachable"), std::string::npos)
                << still_down.error().message;
        }
        auto back = redis->restart();
        EXPECT_TRUE(back) << (back ? "" : back.error().message);
        // A command waits for the reconnection (backoff capped at 200 ms).
        AWAIT(after, c->command({"SET", "after", "2"}, 3000ms));
        EXPECT_TRUE(after && after->is_ok()) << (after ? describe(*after) : after.error().message);
        EXPECT_GE(c->connections(), 2u);
        c->stop();
    });
    EXPECT_EQ(redis->cli({"GET", "after"}), "2");
}

TEST(RedisClient, AuthenticatesWithThePasswordFromTheUrl) {
    test::redis_fixture::options o;
    o.password = "correct-horse-battery";
    auto redis = test::redis_fixture::start(o);
    ASSERT_TRUE(redis) << redis.error().message;
    run_async([&]() -> asio::awaitable<void> {
        AWAIT(ex, asio::this_coro::executor);
        auto good = client_for(ex, redis->url());
        AWAIT(ok, good->command({"SET", "authed", "yes"}));
        EXPECT_TRUE(ok && ok->is_ok()) << (ok ? describe(*ok) : ok.error().message);
        auto wrong = client_for(
            ex, "redis://:wrong-password-here@127.0.0.1:" + std::to_string(redis->port()));
        AWAIT(refused, wrong->command({"GET", "authed"}, 500ms));
        EXPECT_FALSE(refused);
        if (!refused) {
            EXPECT_NE(refused.error().message.find("AUTH refused"), std::string::npos)
                << refused.error().message;
            EXPECT_EQ(refused.error().message.find("wrong-password-here"), std::string::npos);
        }
        auto none = client_for(ex, "redis://127.0.0.1:" + std::to_string(redis->port()));
        AWAIT(noauth, none->command({"GET", "authed"}));
        EXPECT_TRUE(noauth && noauth->is_error() && noauth->text.starts_with("NOAUTH"));
        good->stop();
        wrong->stop();
        none->stop();
    });
}

// (A name that does not resolve is left out: without a DNS server the
// resolver's wait is the machine's, not ours.)
TEST(RedisClient, APortThatRefusesFailsClearlyWithinTheDeadline) {
    auto redis = test::redis_fixture::start();
    ASSERT_TRUE(redis) << redis.error().message;
    const auto port = redis->port();
    redis->stop();
    run_async([&]() -> asio::awaitable<void> {
        AWAIT(ex, asio::this_coro::executor);
        auto refused = client_for(ex, "redis://127.0.0.1:" + std::to_string(port));
        const auto start = steady::now();
        AWAIT(r, refused->command({"PING"}, 300ms));
        EXPECT_FALSE(r);
        EXPECT_LT(steady::now() - start, 1000ms);
        if (!r) {
            EXPECT_NE(r.error().message.find("redis://127.0.0.1:" + std::to_string(port)),
                      std::string::npos)
                << r.error().message;
        }
        EXPECT_FALSE(refused->connected());
        refused->stop();
    });
}

TEST(RedisSentinel, AsksTheSentinelForTheMasterAndAgainAfterADisconnect) {
    auto redis = test::redis_fixture::start();
    ASSERT_TRUE(redis) << redis.error().message;
    auto sentinel = redis->start_sentinel();
    ASSERT_TRUE(sentinel) << sentinel.error().message;
    run_async([&]() -> asio::awaitable<void> {
        AWAIT(ex, asio::this_coro::executor);
        auto c =
            client_for(ex, "redis-sentinel://127.0.0.1:" + std::to_string(*sentinel) + "/mymaster");
        AWAIT(set, c->command({"SET", "via", "sentinel"}, 3000ms));
        EXPECT_TRUE(set && set->is_ok()) << (set ? describe(*set) : set.error().message);
        redis->stop();
        auto back = redis->restart();
        EXPECT_TRUE(back);
        AWAIT(again, c->command({"SET", "again", "1"}, 3000ms));
        EXPECT_TRUE(again && again->is_ok()) << (again ? describe(*again) : again.error().message);
        EXPECT_GE(c->connections(), 2u);
        auto unknown =
            client_for(ex, "redis-sentinel://127.0.0.1:" + std::to_string(*sentinel) + "/other");
        AWAIT(r, unknown->command({"PING"}, 500ms));
        EXPECT_FALSE(r);
        if (!r) {
            EXPECT_NE(r.error().message.find("does not know master \"other\""), std::string::npos)
                << r.error().message;
        }
        c->stop();
        unknown->stop();
    });
    EXPECT_EQ(redis->cli({"GET", "again"}), "1");
}

TEST(RouteTable, OfTwoRacingClaimsExactlyOneWins) {
    auto redis = test::redis_fixture::start();
    ASSERT_TRUE(redis) << redis.error().message;
    run_async([&]() -> asio::awaitable<void> {
        AWAIT(ex, asio::this_coro::executor);
        auto ca = client_for(ex, redis->url());
        auto cb = client_for(ex, redis->url());
        route_table a(ca, "relay-a", "127.0.0.1:7001");
        route_table b(cb, "relay-b", "127.0.0.1:7002");
        AWAIT(ignored4, ca->wait_connected(2s));
        (void)ignored4;
        AWAIT(ignored5, cb->wait_connected(2s));
        (void)ignored5;
        int a_wins = 0, b_wins = 0;
        for (int round = 0; round < 20; ++round) {
            const std::string name = "svc" + std::to_string(round);
            std::atomic<int> finished{0};
            core::result<claim_outcome> ra = core::fail(core::errc::cancelled, "");
            core::result<claim_outcome> rb = core::fail(core::errc::cancelled, "");
            core::spawn(
                ex,
                [&]() -> asio::awaitable<void> {
                    {
                        auto op = a.claim("acme", name, "lease-a", 5s);

                        ra = co_await std::move(op);
                    }
                    ++finished;
                },
                "claim race");
            core::spawn(
                ex,
                [&]() -> asio::awaitable<void> {
                    {
                        auto op = b.claim("acme", name, "lease-b", 5s);

                        rb = co_await std::move(op);
                    }
                    ++finished;
                },
                "claim race");
            while (finished < 2) co_await pause(2ms);
            EXPECT_TRUE(ra && rb);
            if (!ra || !rb) break;
            EXPECT_NE(ra->claimed, rb->claimed) << name;
            AWAIT(winner, a.lookup("acme", name));
            EXPECT_TRUE(winner && *winner);
            if (ra->claimed) {
                ++a_wins;
                EXPECT_EQ(rb->holder.node, "relay-a");
                EXPECT_EQ((*winner)->lease, "lease-a");
            } else {
                ++b_wins;
                EXPECT_EQ(ra->holder.node, "relay-b");
                EXPECT_EQ((*winner)->address, "127.0.0.1:7002");
            }
        }
        EXPECT_EQ(a_wins + b_wins, 20);
        ca->stop();
        cb->stop();
    });
}

TEST(RouteTable, ALeaseHoldsItsNameAgainstEveryOtherLease) {
    auto redis = test::redis_fixture::start();
    ASSERT_TRUE(redis) << redis.error().message;
    run_async([&]() -> asio::awaitable<void> {
        AWAIT(ex, asio::this_coro::executor);
        auto ca = client_for(ex, redis->url());
        auto cb = client_for(ex, redis->url());
        route_table a(ca, "relay-a", "127.0.0.1:7001");
        route_table b(cb, "relay-b", "127.0.0.1:7002");
        AWAIT(held, a.claim("acme", "api", "lease-1", 5s));
        EXPECT_TRUE(held && held->claimed);
        // The same tenant, another lease, on another relay: refused.
        AWAIT(same_tenant, b.claim("acme", "api", "lease-2", 5s));
        EXPECT_TRUE(same_tenant && !same_tenant->claimed);
        if (same_tenant) {
            EXPECT_EQ(same_tenant->holder.node, "relay-a");
            EXPECT_EQ(same_tenant->holder.address, "127.0.0.1:7001");
            EXPECT_GT(same_tenant->holder.expires_in, 4s);
            EXPECT_TRUE(same_tenant->holder.lease.empty());  // another's lease is not handed out
        }
        // The same tenant, another lease, on the same relay: refused too.
        AWAIT(same_relay, a.claim("acme", "api", "lease-3", 5s));
        EXPECT_TRUE(same_relay && !same_relay->claimed);
        // Another tenant's route of that name is its own.
        AWAIT(other_tenant, b.claim("beta", "api", "lease-4", 5s));
        EXPECT_TRUE(other_tenant && other_tenant->claimed);
        // Releasing needs the lease; the holder's lease moving relays keeps it.
        AWAIT(wrong_release, b.release("acme", "api", "lease-2"));
        EXPECT_TRUE(wrong_release && !*wrong_release);
        // A relay holding the lease without its tunnel cannot take the name
        // from the relay the tunnel is attached to (it left that one): told so.
        AWAIT(held_only, b.claim("acme", "api", "lease-1", 5s, false));
        EXPECT_TRUE(held_only && !held_only->claimed);
        if (held_only) {
            EXPECT_EQ(held_only->holder.node, "relay-a");
            EXPECT_EQ(held_only->holder.lease, "lease-1");  // the same lease: it moved
            EXPECT_TRUE(held_only->holder.attached);
        }
        // The tunnel attaching to b with its lease moves the name there.
        AWAIT(moved, b.claim("acme", "api", "lease-1", 5s, true));
        EXPECT_TRUE(moved && moved->claimed);
        AWAIT(now, a.lookup("acme", "api"));
        EXPECT_TRUE(now && *now && (*now)->node == "relay-b" && (*now)->attached);
        AWAIT(left_claim, a.claim("acme", "api", "lease-1", 5s, false));
        EXPECT_TRUE(left_claim && !left_claim->claimed);
        // The relay the lease left cannot release it (its grace ending there).
        AWAIT(left_behind, a.release("acme", "api", "lease-1"));
        EXPECT_TRUE(left_behind && !*left_behind);
        AWAIT(released, b.release("acme", "api", "lease-1"));
        EXPECT_TRUE(released && *released);
        AWAIT(gone, a.lookup("acme", "api"));
        EXPECT_TRUE(gone && !*gone);
        AWAIT(bad, a.claim("Acme", "a/b", "l", 1s));
        EXPECT_FALSE(bad);
        ca->stop();
        cb->stop();
    });
}

TEST(RouteTable, AClaimNotRefreshedExpires) {
    auto redis = test::redis_fixture::start();
    ASSERT_TRUE(redis) << redis.error().message;
    run_async([&]() -> asio::awaitable<void> {
        AWAIT(ex, asio::this_coro::executor);
        auto c = client_for(ex, redis->url());
        route_table a(c, "relay-a", "127.0.0.1:7001");
        route_table b(c, "relay-b", "127.0.0.1:7002");
        AWAIT(held, a.claim("acme", "api", "lease-1", 300ms, false));
        EXPECT_TRUE(held && held->claimed);
        AWAIT(during, b.claim("acme", "api", "lease-2", 5s));
        EXPECT_TRUE(during && !during->claimed);
        if (during) {
            EXPECT_LE(during->holder.expires_in, 300ms);
        }
        // A refresh extends it...
        co_await pause(200ms);
        AWAIT(refreshed, a.claim("acme", "api", "lease-1", 300ms));
        EXPECT_TRUE(refreshed && refreshed->claimed);
        co_await pause(200ms);
        AWAIT(still, b.claim("acme", "api", "lease-2", 5s));
        EXPECT_TRUE(still && !still->claimed);
        // ...and without one the claim ends: the name is free.
        co_await pause(250ms);
        AWAIT(gone, b.lookup("acme", "api"));
        EXPECT_TRUE(gone && !*gone);
        AWAIT(taken, b.claim("acme", "api", "lease-2", 5s));
        EXPECT_TRUE(taken && taken->claimed);
        c->stop();
    });
}

TEST(Revocations, AreSeenByAnotherRelayWithinASecond) {
    auto redis = test::redis_fixture::start();
    ASSERT_TRUE(redis) << redis.error().message;
    run_async([&]() -> asio::awaitable<void> {
        AWAIT(ex, asio::this_coro::executor);
        auto a_cmd = client_for(ex, redis->url());
        auto a_sub = client_for(ex, redis->url());
        auto b_cmd = client_for(ex, redis->url());
        auto b_sub = client_for(ex, redis->url());
        revocation_list a(a_cmd, a_sub);
        revocation_list b(b_cmd, b_sub);
        std::atomic<int> seen{0};
        std::string seen_jti;
        b.watch([&](const std::string& jti) {
            seen_jti = jti;
            ++seen;
        });
        AWAIT(ignored9, b_sub->wait_connected(2s));
        (void)ignored9;
        co_await pause(50ms);  // the SUBSCRIBE is on its way
        AWAIT(before, b.is_revoked("tok-123"));
        EXPECT_TRUE(before && !*before);
        const auto start = steady::now();
        AWAIT(revoked,
              a.revoke("tok-123", std::chrono::system_clock::now() + std::chrono::hours(1)));
        EXPECT_TRUE(revoked) << (revoked ? "" : revoked.error().message);
        while (seen == 0 && steady::now() - start < 1s) co_await pause(5ms);
        EXPECT_EQ(seen, 1);
        EXPECT_EQ(seen_jti, "tok-123");
        EXPECT_TRUE(b.known_revoked("tok-123"));
        AWAIT(after, b_cmd->command({"PTTL", "tunnel:revoked:tok-123"}));
        EXPECT_TRUE(after && after->integer > 3500 * 1000 && after->integer <= 3600 * 1000);
        // A relay that missed the message finds it in Redis.
        revocation_list c(b_cmd, b_sub);
        AWAIT(found, c.is_revoked("tok-123"));
        EXPECT_TRUE(found && *found);
        AWAIT(bad, a.revoke("has space", std::chrono::system_clock::now()));
        EXPECT_FALSE(bad);
        for (auto& client : {a_cmd, a_sub, b_cmd, b_sub}) client->stop();
    });
}

TEST(Revocations, TheSubscriptionComesBackAfterRedisRestarts) {
    auto redis = test::redis_fixture::start();
    ASSERT_TRUE(redis) << redis.error().message;
    run_async([&]() -> asio::awaitable<void> {
        AWAIT(ex, asio::this_coro::executor);
        auto cmd = client_for(ex, redis->url());
        auto sub = client_for(ex, redis->url());
        revocation_list list(cmd, sub);
        std::atomic<int> seen{0};
        list.watch([&](const std::string&) { ++seen; });
        AWAIT(ignored11, sub->wait_connected(2s));
        (void)ignored11;
        redis->stop();
        auto back = redis->restart();
        EXPECT_TRUE(back);
        AWAIT(ignored12, cmd->wait_connected(3s));
        (void)ignored12;
        // Wait for the subscriber to be back and subscribed.
        const auto start = steady::now();
        while (seen == 0 && steady::now() - start < 3s) {
            AWAIT(ignored13, list.revoke("tok-9", std::chrono::system_clock::now() + 1min));
            (void)ignored13;
            co_await pause(50ms);
        }
        EXPECT_GE(seen, 1);
        EXPECT_GE(sub->connections(), 2u);
        cmd->stop();
        sub->stop();
    });
}

TEST(Revocations, LoadFindsEveryRevocationWithItsExpiry) {
    auto redis = test::redis_fixture::start();
    ASSERT_TRUE(redis) << redis.error().message;
    run_async([&]() -> asio::awaitable<void> {
        AWAIT(ex, asio::this_coro::executor);
        auto cmd = client_for(ex, redis->url());
        auto sub = client_for(ex, redis->url());
        revocation_list list(cmd, sub);
        const auto now = std::chrono::system_clock::now();
        for (int i = 0; i < 3; ++i) {
            AWAIT(r, list.revoke("load-" + std::to_string(i), now + std::chrono::hours(1 + i)));
            EXPECT_TRUE(r);
        }
        AWAIT(by_hand, cmd->command({"SET", "tunnel:revoked:by-hand", "1"}));  // no TTL
        EXPECT_TRUE(by_hand && by_hand->is_ok());
        AWAIT(loaded, list.load());
        EXPECT_TRUE(loaded) << (loaded ? "" : loaded.error().message);
        if (loaded) {
            EXPECT_EQ(loaded->size(), 4u);
            for (const auto& [jti, until] : *loaded) {
                if (jti == "by-hand") {
                    EXPECT_GT(until, now + std::chrono::hours(23));
                    continue;
                }
                const int i = jti.back() - '0';
                const auto want = now + std::chrono::hours(1 + i);
                EXPECT_LT(std::chrono::abs(until - want), 2s) << jti;
            }
        }
        AWAIT(until, list.expiry("load-2"));
        EXPECT_TRUE(until && *until);
        AWAIT(none, list.expiry("never-revoked"));
        EXPECT_TRUE(none && !*none);
        cmd->stop();
        sub->stop();
    });
}

TEST(SharedBuckets, TakeUpToGrantsWhatTheBucketHolds) {
    auto redis = test::redis_fixture::start();
    ASSERT_TRUE(redis) << redis.error().message;
    run_async([&]() -> asio::awaitable<void> {
        AWAIT(ex, asio::this_coro::executor);
        auto c = client_for(ex, redis->url());
        shared_buckets buckets(c);
        AWAIT(first, buckets.take_up_to("rps:batch", 0.5, 5, 3));
        EXPECT_TRUE(first && first->granted == 3);
        AWAIT(second, buckets.take_up_to("rps:batch", 0.5, 5, 3));
        EXPECT_TRUE(second && second->granted == 2);  // what was left
        AWAIT(dry, buckets.take_up_to("rps:batch", 0.5, 5, 3));
        EXPECT_TRUE(dry && dry->granted == 0);
        if (dry) {
            EXPECT_GT(dry->retry_after, 1000ms);  // one token at 0.5/s
            EXPECT_LE(dry->retry_after, 2000ms);
        }
        // It is the same bucket take() uses.
        AWAIT(one, buckets.take("rps:batch", 0.5, 5));
        EXPECT_TRUE(one && !one->allowed);
        c->stop();
    });
}

TEST(SharedBuckets, OneBucketIsSharedByTwoClients) {
    auto redis = test::redis_fixture::start();
    ASSERT_TRUE(redis) << redis.error().message;
    run_async([&]() -> asio::awaitable<void> {
        AWAIT(ex, asio::this_coro::executor);
        auto ca = client_for(ex, redis->url());
        auto cb = client_for(ex, redis->url());
        shared_buckets a(ca);
        shared_buckets b(cb);
        int allowed = 0;
        std::chrono::milliseconds retry{0};
        for (int i = 0; i < 4; ++i) {
            AWAIT(da, a.take("rps:acme", 0.5, 5));
            AWAIT(db, b.take("rps:acme", 0.5, 5));
            EXPECT_TRUE(da && db);
            if (!da || !db) break;
            allowed += da->allowed + db->allowed;
            if (!db->allowed) retry = db->retry_after;
        }
        EXPECT_EQ(allowed, 5);  // the burst, across both relays
        EXPECT_GT(retry, 1000ms);
        EXPECT_LE(retry, 2000ms);
        // Another key is another bucket.
        AWAIT(other, b.take("rps:beta", 0.5, 5));
        EXPECT_TRUE(other && other->allowed && other->tokens_left == 4);
        // A server that forgot the script (restart, SCRIPT FLUSH): EVAL.
        EXPECT_EQ(a.script().fallbacks(), 1u);  // the first take loaded it
        AWAIT(flushed, ca->command({"SCRIPT", "FLUSH"}));
        EXPECT_TRUE(flushed && flushed->is_ok());
        AWAIT(again, a.take("rps:gamma", 10, 1));
        EXPECT_TRUE(again && again->allowed);
        EXPECT_EQ(a.script().fallbacks(), 2u);
        AWAIT(bad, a.take("rps:x", 0, 1));
        EXPECT_FALSE(bad);
        ca->stop();
        cb->stop();
    });
}

}  // namespace
}  // namespace tunnel::cluster
