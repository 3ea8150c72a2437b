// Leases and the request queue, end to end (docs/relay.md "Leases and the
// request queue"): a real `tunnel relay`, real `tunnel connect` processes
// whose connection to the relay goes through a fault proxy that drops it,
// real origins. Requests during the gap wait and are delivered after the
// reconnect; another tunnel of the same tenant cannot take a leased name;
// the grace period's end releases it; a full queue and queue.max_wait are
// 503 with Retry-After; a started POST is never sent twice; a client that
// stops on purpose releases its names at once.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <csignal>
#include <future>
#include <sstream>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/fault_proxy.hpp"
#include "support/process.hpp"
#include "support/recording_origin.hpp"
#include "support/relay_fixture.hpp"
#include "support/streaming_origin.hpp"
#include "support/tcp_servers.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

std::string get(const std::string& path, const std::string& extra = "") {
    return fmt::format("GET /t/acme/web{} HTTP/1.1\r\nHost: x\r\n{}Connection: close\r\n\r\n", path,
                       extra);
}

std::string error_of(const http_reply& r) {
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    return j.is_object() ? j.value("error", "") : std::string();
}

bool has_retry_after(const http_reply& r) {
    return r.head.find("Retry-After: ") != std::string::npos;
}

class RelayLease : public ::testing::Test {
  protected:
    void start(const std::string& yaml) {
        relay_options o;
        o.extra_yaml =
            "limits:\n  tenant_rps: 1000\n  route_rps: 1000\n  route_burst: 1000\n" + yaml;
        auto r = relay_fixture::start(std::move(o));
        ASSERT_TRUE(r) << r.error().message;
        relay.emplace(std::move(*r));
        auto p = fault_proxy::start(relay->public_port());
        ASSERT_TRUE(p) << p.error().message;
        proxy = std::move(*p);
        auto h = temp_dir::create("lease-test");
        ASSERT_TRUE(h) << h.error().message;
        home.emplace(std::move(*h));
        auto tok = relay->mint("acme", "web");
        ASSERT_TRUE(tok) << tok.error().message;
        token = *tok;
    }

    // `tunnel connect` through the fault proxy, publishing web -> port.
    void connect_through_proxy(std::uint16_t port) {
        auto c = spawn_tunnel(
            {"connect", fmt::format("ws://127.0.0.1:{}/v1/tunnel", proxy->port()), "--token-file",
             relay->token_file(token), "--json", "--expose", fmt::format("web=127.0.0.1:{}", port),
             "--connect-timeout", "2s", "--keepalive", "1s"},
            home->path(), home->file("a.log"), home->file("a.log"));
        ASSERT_TRUE(c) << c.error().message;
        client.emplace(std::move(*c));
        ASSERT_TRUE(eventually([&] { return events("published") >= 1; }, 20s)) << a_log();
    }

    std::string a_log() const { return read_text_file(home->file("a.log")).value_or(""); }
    int events(const std::string& what, const std::string& log = {}) const {
        int n = 0;
        std::istringstream lines(log.empty() ? a_log() : log);
        for (std::string line; std::getline(lines, line);) {
            auto j = nlohmann::json::parse(line, nullptr, false);
            if (j.is_object() && j.value("event", "") == what) ++n;
        }
        return n;
    }
    static bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
        const auto deadline = steady::now() + timeout;
        while (steady::now() < deadline) {
            if (pred()) return true;
            std::this_thread::sleep_for(50ms);
        }
        return pred();
    }

    // Cuts the tunnel's connection (RST both ways) and keeps new ones from
    // getting through until pass(): the relay sees the drop at once.
    void cut() {
        proxy->set_mode(fault_mode::drop);
        proxy->reset_all();
        ASSERT_TRUE(relay->wait_published("acme", "web", 10s, false)) << relay->log();
    }
    void pass() { proxy->set_mode(fault_mode::pass); }

    std::future<core::result<http_reply>> in_background(std::string request,
                                                        std::chrono::milliseconds timeout = 40s) {
        return std::async(std::launch::async, [port = relay->public_port(), request, timeout] {
            return http_request(port, request, timeout);
        });
    }

    std::optional<relay_fixture> relay;
    std::unique_ptr<fault_proxy> proxy;
    std::optional<temp_dir> home;
    std::string token;
    std::optional<child_process> client;
};

TEST_F(RelayLease, RequestsDuringTheGapAreQueuedAndDeliveredAfterTheReconnect) {
    start("leases: {grace: 30s}\nqueue: {max_wait: 25s}\n");
    recording_origin origin;
    connect_through_proxy(origin.port());
    ASSERT_NE(a_log().find("\"lease_grace_s\":30"), std::string::npos) << a_log();
    auto first = http_request(relay->public_port(), get("/before"));
    ASSERT_TRUE(first && first->status == 200) << relay->log();

    cut();
    std::vector<std::future<core::result<http_reply>>> waiting;
    for (int i = 0; i < 4; ++i) waiting.push_back(in_background(get(fmt::format("/gap-{}", i))));
    std::this_thread::sleep_for(1500ms);
    for (auto& w : waiting)
        EXPECT_EQ(w.wait_for(0s), std::future_status::timeout) << "answered during the gap";
    EXPECT_EQ(origin.count("GET /gap-0"), 0);

    pass();  // the client reconnects with its lease and publishes again
    for (int i = 0; i < 4; ++i) {
        auto r = waiting[i].get();
        ASSERT_TRUE(r) << r.error().message;
        EXPECT_EQ(r->status, 200) << r->raw << "\n" << relay->log();
        EXPECT_EQ(r->body, "ok");
        EXPECT_EQ(origin.count(fmt::format("GET /gap-{}", i)), 1) << "delivered once";
    }
    EXPECT_GE(events("attached"), 2);
    EXPECT_NE(relay->log().find("reclaimed"), std::string::npos) << relay->log();
    const auto metrics = relay->admin_get("/metrics");
    EXPECT_NE(metrics.find("relay_queued_requests_total{outcome=\"delivered\"} 4"),
              std::string::npos)
        << metrics;
    // The lease ID is a secret: never in the relay's log.
    EXPECT_EQ(relay->log().find("Tunnel-Lease:"), std::string::npos);
}

TEST_F(RelayLease, QueuedRequestsAreHandedToTheTunnelsWorker) {
    // Four workers: a request waits on the worker that read it and is
    // handed, with its turn, to the worker of the tunnel that came back.
    start("workers: 4\nleases: {grace: 30s}\nqueue: {max_wait: 25s}\n");
    recording_origin origin;
    connect_through_proxy(origin.port());
    cut();
    std::vector<std::future<core::result<http_reply>>> waiting;
    for (int i = 0; i < 8; ++i) waiting.push_back(in_background(get(fmt::format("/w-{}", i))));
    std::this_thread::sleep_for(1s);
    pass();
    for (int i = 0; i < 8; ++i) {
        auto r = waiting[i].get();
        ASSERT_TRUE(r) << r.error().message;
        EXPECT_EQ(r->status, 200) << r->raw << "\n" << relay->log();
        EXPECT_EQ(origin.count(fmt::format("GET /w-{}", i)), 1);
    }
}

TEST_F(RelayLease, AnotherTunnelOfTheTenantCannotTakeALeasedName) {
    start("leases: {grace: 30s}\n");
    recording_origin a;
    auto b = streaming_origin::start();
    ASSERT_TRUE(b) << b.error().message;
    connect_through_proxy(a.port());
    cut();

    // Same tenant, same token, same name: refused while A's lease holds it.
    auto other = relay->connect(token, {{"web", (*b)->port()}});
    ASSERT_TRUE(other) << other.error().message;
    EXPECT_EQ(events("published", other->log()), 0) << other->log();
    EXPECT_GE(events("refused", other->log()), 1) << other->log();
    EXPECT_NE(relay->log().find("held for"), std::string::npos) << relay->log();

    pass();
    ASSERT_TRUE(eventually([&] { return events("published") >= 2; }, 20s)) << a_log();
    auto r = http_request(relay->public_port(), get("/mine"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->raw;
    EXPECT_EQ(a.count("GET /mine"), 1);
    EXPECT_EQ((*b)->requests(), 0);
}

TEST_F(RelayLease, TheGracePeriodsEndReleasesTheName) {
    start("leases: {grace: 2s}\nqueue: {max_wait: 20s}\n");
    recording_origin a;
    auto b = streaming_origin::start();
    ASSERT_TRUE(b) << b.error().message;
    connect_through_proxy(a.port());
    cut();  // and A stays away
    const auto t0 = steady::now();
    auto waiting = in_background(get("/late"));
    auto r = waiting.get();
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 503) << r->raw;
    EXPECT_EQ(error_of(*r), "tunnel_offline") << r->raw;
    EXPECT_LT(steady::now() - t0, 8s) << "answered when the lease ended, not at max_wait";
    EXPECT_GE(steady::now() - t0, 1s);
    EXPECT_NE(relay->log().find("did not come back within the grace period"), std::string::npos)
        << relay->log();

    // The name is free: another tunnel of the tenant publishes it.
    auto other = relay->connect(token, {{"web", (*b)->port()}});
    ASSERT_TRUE(other) << other.error().message;
    EXPECT_EQ(events("published", other->log()), 1) << other->log();
    auto served = http_request(relay->public_port(), get("/hello"));
    ASSERT_TRUE(served);
    EXPECT_EQ(served->status, 200) << served->raw;
    EXPECT_EQ((*b)->requests(), 1);
    // A request for a name no lease holds fails fast, as before.
    auto none =
        http_request(relay->public_port(),
                     "GET /t/acme/nothing/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    ASSERT_TRUE(none);
    EXPECT_EQ(none->status, 503);
    EXPECT_EQ(error_of(*none), "tunnel_offline");
}

TEST_F(RelayLease, AFullQueueAndMaxWaitAre503WithRetryAfter) {
    start("leases: {grace: 30s}\nqueue: {max_requests: 2, max_wait: 2s}\n");
    recording_origin a;
    connect_through_proxy(a.port());
    cut();
    auto w1 = in_background(get("/one"));
    auto w2 = in_background(get("/two"));
    std::this_thread::sleep_for(700ms);
    const auto t0 = steady::now();
    auto full = http_request(relay->public_port(), get("/three"));
    ASSERT_TRUE(full) << full.error().message;
    EXPECT_LT(steady::now() - t0, 1s) << "a full queue answers at once";
    EXPECT_EQ(full->status, 503) << full->raw;
    EXPECT_EQ(error_of(*full), "queue_full") << full->raw;
    EXPECT_TRUE(has_retry_after(*full)) << full->head;
    for (auto* w : {&w1, &w2}) {
        auto r = w->get();
        ASSERT_TRUE(r) << r.error().message;
        EXPECT_EQ(r->status, 503) << r->raw;
        EXPECT_EQ(error_of(*r), "queue_timeout") << r->raw;
        EXPECT_TRUE(has_retry_after(*r)) << r->head;
    }
    EXPECT_TRUE(a.seen().size() == 0 || a.count("GET /one") == 0);
}

TEST_F(RelayLease, AStartedPostIsNeverSentAgain) {
    start("leases: {grace: 30s}\nqueue: {max_wait: 20s}\n");
    recording_origin a;
    connect_through_proxy(a.port());
    const std::string post =
        "POST /t/acme/web/hang HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: "
        "close\r\n\r\nhello";
    auto posted = in_background(post);
    ASSERT_TRUE(eventually([&] { return a.count("POST /hang") == 1; }, 10s)) << relay->log();
    proxy->reset_all();  // the tunnel drops with the POST at the origin, unanswered
    auto r = posted.get();
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 502) << r->raw;
    // The client comes back with its lease; the POST is not delivered again.
    ASSERT_TRUE(eventually([&] { return events("published") >= 2; }, 20s)) << a_log();
    auto after = http_request(relay->public_port(), get("/after"));
    ASSERT_TRUE(after);
    EXPECT_EQ(after->status, 200) << after->raw;
    std::this_thread::sleep_for(500ms);
    EXPECT_EQ(a.count("POST /hang"), 1) << "a started POST is never replayed";
}

// The tunnel drops while the relay waits for a channel for the request (the
// client is stopped: the channel open is never answered). Nothing of the
// request entered the tunnel, so it waits for the tunnel again and is
// delivered once when the client is back (a POST too: it never started).
TEST_F(RelayLease, ARequestWhoseTunnelDropsBeforeItStartedWaitsForItAgain) {
    start("leases: {grace: 30s}\nqueue: {max_wait: 25s}\n");
    recording_origin a;
    connect_through_proxy(a.port());
    client->signal(SIGSTOP);
    const std::string post =
        "POST /t/acme/web/pending HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: "
        "close\r\n\r\nhello";
    auto posted = in_background(post);
    std::this_thread::sleep_for(500ms);  // the relay waits for the channel to open
    cut();
    client->signal(SIGCONT);
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(posted.wait_for(0s), std::future_status::timeout) << "answered during the gap";
    pass();  // the client reconnects with its lease and publishes again
    auto r = posted.get();
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 200) << r->raw << "\n" << relay->log();
    EXPECT_EQ(a.count("POST /pending"), 1) << "delivered once";
    const auto metrics = relay->admin_get("/metrics");
    EXPECT_NE(metrics.find("relay_queued_requests_total{outcome=\"requeued\"} 1"),
              std::string::npos)
        << metrics;
}

// queue.state_file: a request still waiting when the relay shuts down
// (SIGTERM) is kept, its caller told 202; after the restart it is delivered
// once its name is published again, body and all.
TEST_F(RelayLease, AWaitingRequestIsKeptAcrossAGracefulRestart) {
    auto h = temp_dir::create("lease-state");
    ASSERT_TRUE(h) << h.error().message;
    const auto db = h->file("queue.db");
    start("leases: {grace: 30s}\nqueue: {max_wait: 20s, state_file: " + db + "}\n");
    recording_origin a;
    connect_through_proxy(a.port());
    cut();
    const std::string post =
        "POST /t/acme/web/kept HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    auto posted = in_background(post);
    std::this_thread::sleep_for(500ms);  // it waits in the queue
    relay->process().signal(SIGTERM);
    auto r = posted.get();
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 202) << r->raw;
    EXPECT_NE(r->head.find("Tunnel-Deferred: 1"), std::string::npos) << r->head;
    ASSERT_TRUE(relay->process().wait(10s)) << "the relay did not stop";
    struct stat st {};
    ASSERT_EQ(::stat(db.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << "it holds request heads and bodies";
    EXPECT_EQ(a.count("POST /kept"), 0);

    auto up = relay->restart();
    ASSERT_TRUE(up) << up.error().message;
    pass();  // the client attaches to the new process and publishes again
    ASSERT_TRUE(eventually([&] { return a.count("POST /kept") == 1; }, 20s)) << relay->log();
    std::this_thread::sleep_for(500ms);
    EXPECT_EQ(a.count("POST /kept"), 1) << "delivered once";
    EXPECT_NE(relay->log().find("delivered: 200"), std::string::npos) << relay->log();
}

TEST_F(RelayLease, AClientThatStopsOnPurposeReleasesItsNamesAtOnce) {
    start("leases: {grace: 60s}\n");
    auto a = streaming_origin::start();
    auto b = streaming_origin::start();
    ASSERT_TRUE(a && b);
    auto first = relay->connect(token, {{"web", (*a)->port()}});
    ASSERT_TRUE(first) << first.error().message;
    first->process().terminate();  // SIGTERM: the WebSocket closes with the release code
    ASSERT_TRUE(relay->wait_published("acme", "web", 10s, false));
    const auto t0 = steady::now();
    auto r = http_request(relay->public_port(), get("/hello"));
    ASSERT_TRUE(r) << relay->log() << first->log();
    EXPECT_EQ(r->status, 503) << r->raw;
    EXPECT_LT(steady::now() - t0, 2s) << "not queued: the lease was released";
    auto second = relay->connect(token, {{"web", (*b)->port()}});
    ASSERT_TRUE(second) << second.error().message;
    EXPECT_EQ(events("published", second->log()), 1) << second->log() << relay->log();
}

TEST_F(RelayLease, AReattachReplacesTheTunnelTheRelayHasNotSeenDrop) {
    // The relay would notice a silent link only after ping_interval +
    // ping_timeout; the client (keepalive 1s) gives up first and attaches
    // again with its lease: the old tunnel gives way at once.
    start("leases: {grace: 30s}\nliveness: {ping_interval: 30s, ping_timeout: 30s}\n");
    recording_origin a;
    connect_through_proxy(a.port());
    proxy->set_mode(fault_mode::drop);  // silent: no RST, no FIN
    std::this_thread::sleep_for(5s);
    EXPECT_TRUE(relay->wait_published("acme", "web", 1s, true)) << "the relay has not noticed";
    pass();
    ASSERT_TRUE(eventually([&] { return events("published") >= 2; }, 25s)) << a_log();
    EXPECT_NE(relay->log().find("replaced: the client attached again with its lease"),
              std::string::npos)
        << relay->log();
    auto r = http_request(relay->public_port(), get("/again"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->raw << relay->log();
}

}  // namespace
}  // namespace tunnel::test
