// Leases, the request queue and their config (relay/lease_store.hpp,
// relay/request_queue.hpp, relay/lease_config.hpp).
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "relay/lease_config.hpp"
#include "relay/lease_store.hpp"
#include "relay/relay_config.hpp"
#include "relay/request_queue.hpp"

namespace tunnel::relay {
namespace {

using namespace std::chrono_literals;

TEST(LeaseStore, ANewLeaseHoldsItsNamesAgainstEveryOtherTunnel) {
    auto store = make_memory_lease_store();
    auto a = store->attach("acme", "", 1, 60s);
    ASSERT_NE(a.lease, 0u);
    EXPECT_FALSE(a.reclaimed);
    EXPECT_TRUE(valid_lease_id(a.id)) << a.id;
    ASSERT_TRUE(store->claim(a.lease, "acme", "web"));
    ASSERT_TRUE(store->claim(a.lease, "acme", "web"));  // again: its own

    // Another tunnel of the same tenant, with or without a lease of its own.
    auto b = store->attach("acme", "", 2, 60s);
    EXPECT_NE(b.id, a.id);
    EXPECT_FALSE(store->claim(b.lease, "acme", "web"));
    EXPECT_FALSE(store->claim(0, "acme", "web"));
    // Another tenant's name of the same spelling is another name.
    EXPECT_TRUE(store->claim(0, "bob", "web"));

    // Detached: still held, for the grace period.
    EXPECT_TRUE(store->detach(a.lease, 1, false).names.empty());
    const auto h = store->held("acme", "web");
    EXPECT_EQ(h.lease, a.lease);
    EXPECT_FALSE(h.attached);
    auto refused = store->claim(b.lease, "acme", "web");
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message.find("held for"), std::string::npos)
        << refused.error().message;
    EXPECT_EQ(refused.error().message.find(a.id), std::string::npos) << "never the ID";
}

// In a cluster (docs/cluster.md "Leases across relays") a relay takes over a
// lease another relay issued: the client keeps its ID, and the lease's route
// ID (what relays tell each other and Redis) is the same everywhere.
TEST(LeaseStore, AnAdoptedLeaseKeepsTheClientsIdAndItsRouteId) {
    auto first = make_memory_lease_store();
    auto a = first->attach("acme", "", 1, 60s);
    ASSERT_EQ(a.route_id, lease_route_id(a.id));

    auto other = make_memory_lease_store();  // another relay's
    auto b = other->attach("acme", a.id, 7, 60s, /*adopt=*/true);
    EXPECT_TRUE(b.reclaimed);
    EXPECT_EQ(b.id, a.id);
    EXPECT_EQ(b.route_id, a.route_id);
    EXPECT_EQ(b.previous_tunnel, 0u);
    ASSERT_TRUE(other->claim(b.lease, "acme", "web"));
    // Once known here, the ID reclaims as usual, and only for its tenant.
    (void)other->detach(b.lease, 7, false);
    auto back = other->attach("acme", a.id, 8, 60s);
    EXPECT_TRUE(back.reclaimed);
    EXPECT_EQ(back.names, std::vector<std::string>{"web"});
    auto bob = other->attach("bob", a.id, 9, 60s);
    EXPECT_FALSE(bob.reclaimed);
    EXPECT_NE(bob.id, a.id);
    // Without `adopt` (a relay on its own), an unknown ID is never taken.
    auto lone = make_memory_lease_store();
    EXPECT_FALSE(lone->attach("acme", a.id, 1, 60s).reclaimed);
    // Something that is not an ID is never adopted.
    EXPECT_FALSE(other->attach("acme", "short", 10, 60s, true).reclaimed);
}

TEST(LeaseStore, ARouteIdNamesTheLeaseAndGivesNothingAway) {
    const auto id = new_lease_id();
    const auto r = lease_route_id(id);
    EXPECT_EQ(r.size(), 6u + 32u) << r;
    EXPECT_EQ(r.rfind("lease/", 0), 0u) << r;
    EXPECT_EQ(r, lease_route_id(id));
    EXPECT_NE(r, lease_route_id(new_lease_id()));
    EXPECT_EQ(r.find(id.substr(0, 8)), std::string::npos);
    for (char c : r.substr(6)) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << r;
}

TEST(LeaseStore, OnlyTheRightIdOfTheSameTenantReclaims) {
    auto store = make_memory_lease_store();
    auto a = store->attach("acme", "", 1, 60s);
    ASSERT_TRUE(store->claim(a.lease, "acme", "web"));
    (void)store->detach(a.lease, 1, false);

    // A wrong ID, or the right one presented by another tenant: a new lease.
    std::string wrong = a.id;
    wrong[5] = wrong[5] == 'A' ? 'B' : 'A';
    auto w = store->attach("acme", wrong, 2, 60s);
    EXPECT_FALSE(w.reclaimed);
    EXPECT_NE(w.lease, a.lease);
    auto other = store->attach("bob", a.id, 3, 60s);
    EXPECT_FALSE(other.reclaimed);

    auto back = store->attach("acme", a.id, 4, 60s);
    EXPECT_TRUE(back.reclaimed);
    EXPECT_EQ(back.lease, a.lease);
    EXPECT_EQ(back.previous_tunnel, 0u);  // it had detached
    EXPECT_EQ(back.names, std::vector<std::string>{"web"});
    EXPECT_TRUE(store->claim(back.lease, "acme", "web"));
    EXPECT_TRUE(store->held("acme", "web").attached);

    // Reclaimed while the relay still had the old tunnel attached: the old
    // one is named, and its late detach does not start a grace period.
    auto again = store->attach("acme", a.id, 5, 60s);
    EXPECT_EQ(again.previous_tunnel, 4u);
    EXPECT_TRUE(store->detach(a.lease, 4, false).names.empty());
    EXPECT_TRUE(store->held("acme", "web").attached);
}

TEST(LeaseStore, GraceEndsReleaseAndReleaseOnPurposeIsAtOnce) {
    auto store = make_memory_lease_store();
    auto a = store->attach("acme", "", 1, 50ms);
    ASSERT_TRUE(store->claim(a.lease, "acme", "web"));
    ASSERT_TRUE(store->claim(a.lease, "acme", "api"));
    (void)store->detach(a.lease, 1, false);
    EXPECT_TRUE(store->expire(lease_store::clock::now()).empty());
    auto gone = store->expire(lease_store::clock::now() + 100ms);
    ASSERT_EQ(gone.size(), 1u);
    EXPECT_EQ(gone[0].tenant, "acme");
    EXPECT_EQ(std::set<std::string>(gone[0].names.begin(), gone[0].names.end()),
              (std::set<std::string>{"web", "api"}));
    EXPECT_EQ(store->held("acme", "web").lease, 0u);
    EXPECT_EQ(store->size(), 0u);
    EXPECT_FALSE(store->attach("acme", a.id, 2, 60s).reclaimed) << "an expired lease is gone";

    auto b = store->attach("acme", "", 3, 60s);
    ASSERT_TRUE(store->claim(b.lease, "acme", "web"));
    auto released = store->detach(b.lease, 3, true);
    EXPECT_EQ(released.names, std::vector<std::string>{"web"});
    EXPECT_TRUE(store->claim(0, "acme", "web"));

    // Unpublishing a name lets it go at once.
    auto c = store->attach("acme", "", 4, 60s);
    ASSERT_TRUE(store->claim(c.lease, "acme", "llm"));
    store->release(c.lease, "acme", "llm");
    EXPECT_EQ(store->held("acme", "llm").lease, 0u);
}

TEST(LeaseStore, ConcurrentClaimsHaveOneWinner) {
    auto store = make_memory_lease_store();
    std::vector<std::uint64_t> leases;
    for (int i = 0; i < 8; ++i) leases.push_back(store->attach("acme", "", 10 + i, 60s).lease);
    std::atomic<int> won{0};
    std::vector<std::thread> threads;
    for (auto l : leases)
        threads.emplace_back([&, l] {
            if (store->claim(l, "acme", "web")) ++won;
        });
    for (auto& t : threads) t.join();
    EXPECT_EQ(won.load(), 1);
}

struct woken {
    std::vector<int> order;
    std::function<void()> as(int i) {
        return [this, i] { order.push_back(i); };
    }
};

TEST(RequestQueue, DeliversOneAtATimeHighFirstFifoWithinAClass) {
    auto q = std::make_shared<request_queue>(10, 1 << 20);
    woken w;
    auto a = q->enqueue("acme", "web", queue_class::normal, 10, w.as(1));
    auto b = q->enqueue("acme", "web", queue_class::low, 10, w.as(2));
    auto c = q->enqueue("acme", "web", queue_class::normal, 10, w.as(3));
    auto d = q->enqueue("acme", "web", queue_class::high, 10, w.as(4));
    ASSERT_TRUE(a.place && b.place && c.place && d.place);
    EXPECT_EQ(d.queued, 4u);
    EXPECT_TRUE(w.order.empty()) << "nothing until the tunnel is back";
    q->open("acme", "web");
    EXPECT_EQ(w.order, std::vector<int>{4});
    EXPECT_EQ(d.place->current(), request_queue::state::delivered);
    EXPECT_EQ(a.place->current(), request_queue::state::waiting);
    d.place.reset();  // started: the next one goes
    EXPECT_EQ(w.order, (std::vector<int>{4, 1}));
    a.place.reset();
    c.place.reset();  // c was delivered after a
    EXPECT_EQ(w.order, (std::vector<int>{4, 1, 3, 2}));
    EXPECT_TRUE(q->busy("acme", "web"));
    b.place.reset();
    EXPECT_FALSE(q->busy("acme", "web"));
    EXPECT_EQ(q->waiting(), 0u);
}

TEST(RequestQueue, BoundedInRequestsAndBytesPerName) {
    auto q = std::make_shared<request_queue>(2, 100);
    auto a = q->enqueue("acme", "web", queue_class::normal, 10, {});
    auto b = q->enqueue("acme", "web", queue_class::normal, 10, {});
    auto c = q->enqueue("acme", "web", queue_class::high, 10, {});
    EXPECT_FALSE(c.place);
    EXPECT_EQ(c.why, request_queue::full::requests);
    auto other = q->enqueue("acme", "api", queue_class::normal, 90, {});  // another name
    ASSERT_TRUE(other.place);
    auto big = q->enqueue("acme", "api", queue_class::normal, 20, {});
    EXPECT_EQ(big.why, request_queue::full::bytes);
    a.place.reset();  // left: room again
    EXPECT_TRUE(q->enqueue("acme", "web", queue_class::normal, 10, {}).place);
}

TEST(RequestQueue, DropTellsEveryWaiterAndCloseStopsDelivering) {
    auto q = std::make_shared<request_queue>(10, 1000);
    woken w;
    auto a = q->enqueue("acme", "web", queue_class::normal, 1, w.as(1));
    auto b = q->enqueue("acme", "web", queue_class::normal, 1, w.as(2));
    q->open("acme", "web");
    q->close("acme", "web");  // the tunnel went again while a was delivered
    a.place.reset();
    EXPECT_EQ(w.order, std::vector<int>{1});
    EXPECT_EQ(b.place->current(), request_queue::state::waiting);
    q->drop("acme", "web");
    EXPECT_EQ(b.place->current(), request_queue::state::dropped);
    EXPECT_EQ(w.order, (std::vector<int>{1, 2}));
    EXPECT_EQ(q->waiting(), 0u);
}

TEST(LeaseConfig, ParsesAndValidatesEveryKey) {
    const std::string base = "listen: 127.0.0.1:0\nhost_key_file: hk\njwt: {secret_file: s}\n";
    auto d = parse_relay_config(base, "r.yaml");
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_EQ(d->leases.grace, 60s);
    EXPECT_EQ(d->queue.max_wait, 30s);

    auto c = parse_relay_config(base + R"(leases: {grace: 5s}
queue:
  max_requests: 3
  max_bytes: 4096
  max_wait: 2s
  priority_header: X-Prio
  trusted_tenants: [acme, batch-*]
  routes: {acme/reports: low, bob/api: high}
  state_file: /var/lib/tunnel/queue.db
)",
                                "r.yaml");
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->leases.grace, 5s);
    EXPECT_EQ(c->queue.max_requests, 3u);
    EXPECT_EQ(c->queue.max_bytes, 4096u);
    EXPECT_EQ(c->queue.max_wait, 2s);
    EXPECT_EQ(c->queue.priority_header, "X-Prio");
    EXPECT_EQ(c->queue.state_file, "/var/lib/tunnel/queue.db");
    EXPECT_TRUE(d->queue.state_file.empty());
    const std::string high = "high", junk = "urgent";
    EXPECT_EQ(class_of(c->queue, "acme", "web", &high), queue_class::high);
    EXPECT_EQ(class_of(c->queue, "acme", "reports", nullptr), queue_class::low);
    EXPECT_EQ(class_of(c->queue, "acme", "reports", &junk), queue_class::low);
    EXPECT_EQ(class_of(c->queue, "bob", "api", nullptr), queue_class::high);
    EXPECT_EQ(class_of(c->queue, "eve", "web", &high), queue_class::normal)
        << "an untrusted tenant's callers cannot jump the queue";
    EXPECT_EQ(class_of(c->queue, "batch-7", "x", &high), queue_class::high);
    EXPECT_TRUE(parse_relay_config(base + "leases: {grace: 0}\n", "r"));

    struct bad_case {
        const char* yaml;
        const char* expect;
    };
    for (const auto& [yaml, expect] : std::vector<bad_case>{
             {"leases: {grace: 48h}\n", "leases.grace: must be from 0"},
             {"leases: {grace: soon}\n", "leases.grace"},
             {"leases: {graze: 5s}\n", "leases.graze: unknown key"},
             {"queue: {max_wait: 0s}\n", "queue.max_wait: must be more than 0"},
             {"queue: {max_wait: 1h}\n", "queue.max_wait: must be more than 0 and at most 10m"},
             {"queue: {max_requests: -1}\n", "queue.max_requests"},
             {"queue: {max_bytes: 10}\n", "queue.max_bytes"},
             {"queue: {priority_header: 'X Prio'}\n", "queue.priority_header: \"X Prio\" is not"},
             {"queue: {trusted_tenants: [Acme]}\n", "queue.trusted_tenants: \"Acme\" is not"},
             {"queue: {routes: {acme: high}}\n", "queue.routes.acme: must be tenant/name"},
             {"queue: {routes: {acme/web: urgent}}\n",
              "queue.routes.acme/web: \"urgent\" is not a class: write high, normal or low"},
             {"queue: {routes: [acme/web]}\n", "queue.routes: must be a map"},
             {"queue: {state_file: ''}\n", "queue.state_file: must be a file path"},
         }) {
        auto r = parse_relay_config(base + yaml, "r.yaml");
        ASSERT_FALSE(r) << yaml;
        EXPECT_NE(r.error().message.find(expect), std::string::npos)
            << yaml << " -> " << r.error().message;
    }
    auto lines = describe(*c);
    bool found = false;
    for (const auto& l : lines) found = found || l == "leases.grace: 5s";
    EXPECT_TRUE(found);
}

}  // namespace
}  // namespace tunnel::relay
