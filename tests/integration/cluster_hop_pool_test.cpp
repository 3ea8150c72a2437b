// The proxy hop per request (docs/cluster.md "The proxy hop"): a keep-alive
// public connection to relay B may ask for names on either relay, each
// request routed on its own; hop connections are pooled across public
// connections, each request rebinding one with a preamble of its own, which
// the owner verifies as the first (a forged or replayed one, or a request
// without one, is refused). Against a scripted owner: a response that closes
// or is not framed is not pooled; a pooled connection the owner closed
// before the request started is replaced once, and a request the owner
// announced as started is never sent again (502).
#include <arpa/inet.h>
#include <netinet/in.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "cluster_hop_fixture.hpp"

namespace tunnel::test {
namespace {

std::string keep_alive_get(const std::string& target) {
    return "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
}

TEST(ClusterHopRouting, OneKeepAliveConnectionToBReachesNamesOnEitherRelay) {
    hop_cluster c;
    const auto failed = c.start();
    ASSERT_TRUE(failed.empty()) << failed;
    // acme/api: a second tunnel on A (another origin); acme/local: B's own.
    auto api_origin = streaming_origin::start();
    auto local_origin = streaming_origin::start();
    ASSERT_TRUE(api_origin && local_origin);
    auto api_token = c.a->mint("acme", "api");
    auto local_token = c.a->mint("acme", "local");
    ASSERT_TRUE(api_token && local_token);
    auto api = c.a->connect(*api_token, {{"api", (*api_origin)->port()}});
    ASSERT_TRUE(api) << api.error().message;
    auto local = c.b->connect(*local_token, {{"local", (*local_origin)->port()}});
    ASSERT_TRUE(local) << local.error().message;
    const auto until = steady::now() + 10s;
    while (steady::now() < until) {
        auto reply = c.get_via_b("/t/acme/api/hello");
        if (reply && reply->status == 200) break;
        std::this_thread::sleep_for(50ms);
    }
    const int web_before = c.origin->requests();
    const int api_before = (*api_origin)->requests();
    const int local_before = (*local_origin)->requests();

    // One connection, four requests: A's web, A's api, B's local, A's web.
    int fd = connect_from("127.0.0.3", c.b->public_port());
    ASSERT_GE(fd, 0);
    const std::vector<std::string> targets = {"/t/acme/web/headers", "/t/acme/api/headers",
                                              "/t/acme/local/headers", "/t/acme/web/headers"};
    for (const auto& target : targets) {
        send_all(fd, keep_alive_get(target));
        const auto raw = read_response(fd, 10s);
        auto reply = parse_http_reply(raw);
        ASSERT_TRUE(reply) << target << ": " << raw << c.a->log() << c.b->log();
        EXPECT_EQ(reply->status, 200) << target << ": " << raw;
        EXPECT_EQ(reply->head.find("Connection: close"), std::string::npos) << reply->head;
        EXPECT_NE(reply->body.find("X-Forwarded-For: 127.0.0.3\r\n"), std::string::npos)
            << target << ": " << reply->body;
    }
    // Still open: nothing more comes, and no close.
    bool closed = false;
    const auto more = read_until(fd, 300ms, closed);
    ::close(fd);
    EXPECT_FALSE(closed);
    EXPECT_TRUE(more.empty()) << more;
    // Each by the origin of its name.
    EXPECT_EQ(c.origin->requests(), web_before + 2);
    EXPECT_EQ((*api_origin)->requests(), api_before + 1);
    EXPECT_EQ((*local_origin)->requests(), local_before + 1);
}

TEST(ClusterHopPool, ClosingCallersShareHopConnectionsEachWithItsOwnPreamble) {
    hop_cluster c;
    const auto failed = c.start();
    ASSERT_TRUE(failed.empty()) << failed;
    const auto b_before = c.b->admin_get("/metrics");
    const auto a_before = c.a->admin_get("/metrics");
    constexpr int n = 20;
    for (int i = 0; i < n; ++i) {
        // Callers from two addresses, on connections of their own.
        const std::string from = i % 2 ? "127.0.0.2" : "127.0.0.3";
        bool closed = false;
        const auto raw = exchange_from(from, c.b->public_port(),
                                       "GET /t/acme/web/headers HTTP/1.1\r\nHost: "
                                       "127.0.0.1\r\nConnection: close\r\n\r\n",
                                       closed);
        EXPECT_TRUE(closed);  // B closes the caller's connection, as asked
        auto reply = parse_http_reply(raw);
        ASSERT_TRUE(reply) << raw;
        ASSERT_EQ(reply->status, 200) << raw << c.b->log();
        EXPECT_NE(reply->head.find("Connection: close"), std::string::npos) << reply->head;
        EXPECT_NE(reply->body.find("X-Forwarded-For: " + from + "\r\n"), std::string::npos)
            << reply->body;
    }
    const auto b_after = c.b->admin_get("/metrics");
    const auto a_after = c.a->admin_get("/metrics");
    const std::string sent = "relay_cluster_hops_total{outcome=\"sent\"}";
    const std::string reused = "relay_cluster_hops_total{outcome=\"reused\"}";
    const std::string received = "relay_cluster_hops_total{outcome=\"received\"}";
    const double new_hops = metric(b_after, sent) - metric(b_before, sent);
    const double reused_hops = metric(b_after, reused) - metric(b_before, reused);
    EXPECT_EQ(new_hops + reused_hops, n) << b_after;
    // At most one new hop connection per worker of B (the pools are per
    // worker); every other request went on a pooled one.
    EXPECT_LE(new_hops, 4) << b_after;
    EXPECT_GE(reused_hops, n - 4) << b_after;
    // Every request came to A with a preamble of its own.
    EXPECT_EQ(metric(a_after, received) - metric(a_before, received), n) << a_after;
}

TEST(ClusterHopPool, PipelinedBodiesAndUpgradesThroughBKeepTheirBounds) {
    hop_cluster c;
    const auto failed = c.start();
    ASSERT_TRUE(failed.empty()) << failed;
    // A chunked POST and a GET in one write, then a POST with a length: each
    // body goes to A as its framing delimits it, nothing of one request in
    // another's (each answered by the origin, in order, on one connection;
    // A never sees bytes where it expects a preamble).
    const std::string refused = "relay_cluster_hops_total{outcome=\"refused\"}";
    const double refused_before = metric(c.a->admin_get("/metrics"), refused);
    int fd = connect_from("127.0.0.2", c.b->public_port());
    ASSERT_GE(fd, 0);
    send_all(fd,
             "POST /t/acme/web/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: "
             "chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n" +
                 keep_alive_get("/t/acme/web/hello"));
    // The echo comes back with Content-Length (the origin's own framing).
    auto echo = parse_http_reply(read_response(fd, 10s));
    ASSERT_TRUE(echo) << c.b->log();
    EXPECT_EQ(echo->status, 200);
    EXPECT_EQ(echo->body, "hello world");
    auto hello = parse_http_reply(read_response(fd, 10s));
    ASSERT_TRUE(hello);
    EXPECT_EQ(hello->status, 200);
    EXPECT_EQ(hello->body, "hello\n");
    send_all(fd,
             "POST /t/acme/web/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: "
             "3\r\n\r\nabc");
    auto short_echo = parse_http_reply(read_response(fd, 10s));
    ASSERT_TRUE(short_echo);
    EXPECT_EQ(short_echo->body, "abc");
    EXPECT_EQ(metric(c.a->admin_get("/metrics"), refused), refused_before);

    // Then an upgrade on the same connection: after the 101, raw both ways.
    send_all(fd,
             "GET /t/acme/web/upgrade HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: "
             "echo\r\nConnection: Upgrade\r\n\r\n");
    bool closed = false;
    auto raw = read_until(fd, 10s, closed, [](const std::string& so_far) {
        return so_far.find("\r\n\r\n") != std::string::npos;
    });
    EXPECT_EQ(raw.rfind("HTTP/1.1 101 ", 0), 0u) << raw;
    for (int i = 0; i < 3; ++i) {
        const std::string frame = fmt::format("frame-{}|", i);
        send_all(fd, frame);
        const auto back = read_until(fd, 5s, closed, [&](const std::string& so_far) {
            return so_far.find(frame) != std::string::npos;
        });
        EXPECT_NE(back.find(frame), std::string::npos) << back;
    }
    ::close(fd);
}

TEST(ClusterHopPool, EveryRequestOnAHopConnectionNeedsAGoodPreambleOfItsOwn) {
    hop_cluster c;
    const auto failed = c.start();
    ASSERT_TRUE(failed.empty()) << failed;
    const int before = c.origin->requests();
    const std::string headers = keep_alive_get("/t/acme/web/headers");

    // Opens a hop connection to A and has one request answered on it.
    auto open_hop = [&](const std::string& preamble) {
        int fd = connect_from("127.0.0.1", c.a_internal);
        if (fd < 0) return fd;
        send_all(fd, preamble + headers);
        auto reply = parse_http_reply(read_response(fd, 10s));
        EXPECT_TRUE(reply && reply->status == 200) << c.a->log();
        return fd;
    };
    // Sends `data` on `fd`; true when A closes it without a byte.
    auto refused = [](int fd, const std::string& data) {
        send_all(fd, data);
        bool closed = false;
        const auto raw = read_until(fd, 5s, closed);
        ::close(fd);
        return closed && raw.empty();
    };

    // A second preamble rebinds the connection to another caller.
    int fd = open_hop(hop_cluster::preamble(relay::unix_ms_now(), "127.0.0.8"));
    ASSERT_GE(fd, 0);
    send_all(fd, hop_cluster::preamble(relay::unix_ms_now(), "127.0.0.7") + headers);
    auto second = parse_http_reply(read_response(fd, 10s));
    ASSERT_TRUE(second);
    EXPECT_EQ(second->status, 200);
    EXPECT_NE(second->body.find("X-Forwarded-For: 127.0.0.7\r\n"), std::string::npos)
        << second->body;
    // A forged one (wrong HMAC) after them is refused.
    std::string forged = hop_cluster::preamble(relay::unix_ms_now(), "127.0.0.6");
    forged[forged.size() - 3] = forged[forged.size() - 3] == 'a' ? 'b' : 'a';
    EXPECT_TRUE(refused(fd, forged + headers)) << "a forged second preamble";

    // A request without a preamble after the first is refused: it is not
    // served as the previous caller's.
    fd = open_hop(hop_cluster::preamble(relay::unix_ms_now()));
    ASSERT_GE(fd, 0);
    EXPECT_TRUE(refused(fd, headers)) << "a second request without a preamble";

    // A replayed preamble is refused on a kept connection too.
    const std::string once = hop_cluster::preamble(relay::unix_ms_now(), "127.0.0.5");
    fd = open_hop(once);
    ASSERT_GE(fd, 0);
    EXPECT_TRUE(refused(fd, once + headers)) << "a replayed second preamble";

    // A stale one.
    fd = open_hop(hop_cluster::preamble(relay::unix_ms_now()));
    ASSERT_GE(fd, 0);
    EXPECT_TRUE(refused(fd, hop_cluster::preamble(relay::unix_ms_now() - 60'000) + headers))
        << "a stale second preamble";

    // The good requests only: two on the first connection, one on each other.
    EXPECT_EQ(c.origin->requests(), before + 5);
    const auto log = c.a->log();
    EXPECT_NE(log.find("refused (bad_hmac)"), std::string::npos) << log;
    EXPECT_EQ(log.find(cluster_secret), std::string::npos);
}

// A relay that owns acme/web as far as relay B knows (a claim announced in
// Redis), scripted: it verifies each preamble and answers by path:
//   /keep      200 with "<connection>:<request on it>:<client ip>", kept open
//   /close     the same with Connection: close (and keeps the connection)
//   /unframed  a body until the connection closes
//   /once      answered on a connection's first request; closes at a later one
//   /lost      announces the request started (TUNNEL-HOP/2), then closes
//   /gone      the first time: says the route has no tunnel here (a 503
//              after hop_not_attached_line, as a relay whose name moved); then
//              as /keep
// It counts the requests it got per path.
class scripted_owner {
  public:
    scripted_owner() {
        auto l = listen_loopback();
        fd_ = l.fd;
        port_ = l.port;
        thread_ = std::thread([this] { accept_loop(); });
    }
    scripted_owner(const scripted_owner&) = delete;
    scripted_owner& operator=(const scripted_owner&) = delete;
    ~scripted_owner() {
        stop_ = true;
        ::shutdown(fd_, SHUT_RDWR);
        ::close(fd_);
        thread_.join();
        std::lock_guard lock(mutex_);
        for (int fd : conns_) ::shutdown(fd, SHUT_RDWR);
        for (auto& t : workers_) t.join();
        for (int fd : conns_) ::close(fd);
    }
    [[nodiscard]] std::uint16_t port() const { return port_; }
    [[nodiscard]] int connections() const { return accepted_; }
    [[nodiscard]] int bad_preambles() const { return bad_; }
    [[nodiscard]] int got(const std::string& path) {
        std::lock_guard lock(mutex_);
        return got_[path];
    }

  private:
    void accept_loop() {
        while (!stop_) {
            const int fd = ::accept(fd_, nullptr, nullptr);
            if (fd < 0) return;
            const int id = ++accepted_;
            std::lock_guard lock(mutex_);
            conns_.push_back(fd);
            workers_.emplace_back([this, fd, id] {
                serve(fd, id);
                ::shutdown(fd, SHUT_RDWR);  // closed without an answer, or after one
            });
        }
    }
    void serve(int fd, int id) {
        std::string buf;
        for (int seq = 1;; ++seq) {
            bool closed = false;
            buf += read_until(fd, 30s, closed, [](const std::string& so_far) {
                return so_far.find("\r\n\r\n") != std::string::npos;
            });
            const auto eol = buf.find("\r\n");
            const auto end = buf.find("\r\n\r\n");
            if (eol == std::string::npos || end == std::string::npos) return;
            auto p =
                keys_.verify(std::string_view(buf).substr(0, eol), relay::unix_ms_now(), seen_);
            if (!p) {
                ++bad_;
                return;
            }
            const std::string request = buf.substr(eol + 2, end - eol - 2);
            buf.erase(0, end + 4);  // GETs only: no body
            const auto sp = request.find(' ');
            const std::string target = request.substr(sp + 1, request.find(' ', sp + 1) - sp - 1);
            const std::string body = fmt::format("{}:{}:{}", id, seq, p->client_ip);
            int times = 0;
            {
                std::lock_guard lock(mutex_);
                times = ++got_[target.substr(target.rfind('/'))];
            }
            if (target.ends_with("/gone") && times == 1) {
                send_all(fd, std::string(relay::hop_not_attached_line) +
                                 "HTTP/1.1 503 Service Unavailable\r\nContent-Length: "
                                 "0\r\nConnection: close\r\n\r\n");
                return;
            }
            if (target.ends_with("/once") && seq > 1) return;  // before it started
            if (p->version >= 2) send_all(fd, std::string(relay::hop_started_line));
            if (target.ends_with("/lost")) return;  // after it started
            if (target.ends_with("/unframed")) {
                send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body);
                return;
            }
            // (After a /close it keeps the connection, for a request that
            // should never come.)
            const bool close = target.ends_with("/close");
            send_all(fd, fmt::format("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{}\r\n{}",
                                     body.size(), close ? "Connection: close\r\n" : "", body));
        }
    }

    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> accepted_{0};
    std::atomic<int> bad_{0};
    relay::hop_signer keys_{cluster_secret};
    relay::hop_replay_cache seen_;
    std::mutex mutex_;
    std::vector<int> conns_;
    std::map<std::string, int> got_;
    std::vector<std::thread> workers_;
    std::thread thread_;
};

// Redis, relay B, and a scripted owner B believes holds acme/web.
struct scripted_cluster : cluster_base {
    std::optional<relay_fixture> b;
    std::unique_ptr<scripted_owner> owner = std::make_unique<scripted_owner>();

    std::string start() {
        if (auto failed = start_base("tunnel-hop-pool"); !failed.empty()) return failed;
        relay_options ob;
        ob.extra_yaml = cluster_yaml(*redis, "relay-b", secret);
        auto rb = relay_fixture::start(ob);
        if (!rb) return rb.error().message;
        b.emplace(std::move(*rb));
        // The owner's claim, announced as a relay does, until B hops to it.
        const auto claim = fmt::format(
            "claim\trelay-x\tacme\tweb\tlease/x\t600000\t127.0.0.1:{}\t1", owner->port());
        const auto until = steady::now() + 10s;
        while (steady::now() < until) {
            (void)redis->cli({"PUBLISH", "tunnel:routes", claim});
            auto reply = http_request(b->public_port(),
                                      "GET /t/acme/web/keep HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                      "Connection: close\r\n\r\n");
            if (reply && reply->status == 200) return {};
            std::this_thread::sleep_for(100ms);
        }
        return "B never routed acme/web to the scripted owner\n" + b->log();
    }

    [[nodiscard]] double hops(const std::string& outcome) const {
        return metric(b->admin_get("/metrics"),
                      "relay_cluster_hops_total{outcome=\"" + outcome + "\"}");
    }
};

// One keep-alive connection's request; the reply (status 0: none).
http_reply ask(int fd, const std::string& target) {
    send_all(fd, keep_alive_get(target));
    const auto raw = read_response(fd, 10s);
    auto reply = parse_http_reply(raw);
    return reply ? *reply : http_reply{0, {}, {}, raw};
}

// The scripted owner's answer: "<connection>:<request on it>:<client ip>".
struct served_by {
    std::string conn;
    int seq = 0;
    std::string ip;
};
served_by served(const http_reply& r) {
    const auto a = r.body.find(':');
    const auto b = r.body.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) return {};
    return {r.body.substr(0, a), std::stoi(r.body.substr(a + 1, b - a - 1)), r.body.substr(b + 1)};
}

TEST(ClusterHopPool, AKeptResponseIsPooledAndAClosingOneIsNot) {
    scripted_cluster c;
    const auto failed = c.start();
    ASSERT_TRUE(failed.empty()) << failed;
    int fd = connect_from("127.0.0.2", c.b->public_port());
    ASSERT_GE(fd, 0);
    // Two requests on one caller connection share one hop connection.
    auto first = ask(fd, "/t/acme/web/keep");
    auto second = ask(fd, "/t/acme/web/keep");
    ASSERT_EQ(first.status, 200) << first.raw << c.b->log();
    ASSERT_EQ(second.status, 200) << second.raw << c.b->log();
    EXPECT_EQ(served(second).conn, served(first).conn);
    EXPECT_EQ(served(second).seq, served(first).seq + 1);
    EXPECT_EQ(served(second).ip, "127.0.0.2");
    // A response with Connection: close: its hop connection is not pooled,
    // and the caller is told its connection closes.
    auto closing = ask(fd, "/t/acme/web/close");
    ASSERT_EQ(closing.status, 200) << closing.raw;
    EXPECT_NE(closing.head.find("Connection: close"), std::string::npos) << closing.head;
    bool closed = false;
    (void)read_until(fd, 5s, closed);
    ::close(fd);
    EXPECT_TRUE(closed);
    // (The owner keeps that connection open: were it pooled, a later
    // request would go there.) Callers on new connections never get it.
    for (int i = 0; i < 6; ++i) {
        fd = connect_from("127.0.0.2", c.b->public_port());
        ASSERT_GE(fd, 0);
        auto later = ask(fd, "/t/acme/web/keep");
        ::close(fd);
        ASSERT_EQ(later.status, 200) << later.raw;
        EXPECT_NE(served(later).conn, served(closing).conn) << later.body;
    }
    // A body delimited by the connection's end reaches the caller whole,
    // and ends the caller's connection too.
    const auto raw = exchange_from("127.0.0.4", c.b->public_port(),
                                   keep_alive_get("/t/acme/web/unframed"), closed);
    EXPECT_TRUE(closed);
    EXPECT_TRUE(raw.ends_with(":127.0.0.4")) << raw;  // the body, whole
    EXPECT_EQ(c.owner->bad_preambles(), 0);
}

TEST(ClusterHopPool, APooledHopTheOwnerClosedIsReplacedForARequestThatMayGoAgain) {
    scripted_cluster c;
    const auto failed = c.start();
    ASSERT_TRUE(failed.empty()) << failed;
    int fd = connect_from("127.0.0.2", c.b->public_port());
    ASSERT_GE(fd, 0);
    // The first request pools a connection; the owner closes it when the
    // second comes on it: B sends the GET again on a new one.
    auto first = ask(fd, "/t/acme/web/once");
    ASSERT_EQ(first.status, 200) << first.raw << c.b->log();
    const double retried = c.hops("retried");
    auto second = ask(fd, "/t/acme/web/once");
    ASSERT_EQ(second.status, 200) << second.raw << c.b->log();
    EXPECT_NE(served(second).conn, served(first).conn);
    EXPECT_EQ(served(second).seq, 1);
    EXPECT_EQ(c.hops("retried"), retried + 1);
    // The owner closed it before the request started (it never announced
    // it): a POST goes again as well.
    auto third = ask(fd, "/t/acme/web/keep");
    ASSERT_EQ(third.status, 200) << third.raw;
    send_all(fd,
             "POST /t/acme/web/once HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: "
             "0\r\n\r\n");
    auto post = parse_http_reply(read_response(fd, 10s));
    ASSERT_TRUE(post);
    EXPECT_EQ(post->status, 200) << post->raw;
    EXPECT_EQ(c.hops("retried"), retried + 2);
    ::close(fd);
    EXPECT_EQ(c.owner->bad_preambles(), 0);
}

TEST(ClusterHopPool, AnOwnerWithoutTheTunnelMakesTheRequestWaitForTheNextClaim) {
    scripted_cluster c;
    const auto failed = c.start();
    ASSERT_TRUE(failed.empty()) << failed;
    // The owner says acme/web is not its (B's mirror is stale): the request
    // never started, and the claim's lease holds the name, so it waits.
    int fd = connect_from("127.0.0.2", c.b->public_port());
    ASSERT_GE(fd, 0);
    send_all(fd, "GET /t/acme/web/gone HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    bool closed = false;
    const auto early = read_until(fd, 1s, closed);
    EXPECT_TRUE(early.empty()) << early;
    EXPECT_FALSE(closed);
    EXPECT_EQ(c.hops("stale"), 1);
    EXPECT_EQ(c.owner->got("/gone"), 1);
    // A claim of the name is heard again: the request goes (to the owner,
    // which answers it now).
    (void)c.redis->cli({"PUBLISH", "tunnel:routes",
                        fmt::format("claim\trelay-x\tacme\tweb\tlease/x\t600000\t127.0.0.1:{}\t1",
                                    c.owner->port())});
    const auto raw = read_until(fd, 10s, closed);
    ::close(fd);
    auto reply = parse_http_reply(raw);
    ASSERT_TRUE(reply) << raw << c.b->log();
    EXPECT_EQ(reply->status, 200) << raw;
    EXPECT_EQ(raw.find("TUNNEL-HOP"), std::string::npos) << raw;
    EXPECT_EQ(c.owner->got("/gone"), 2);
    EXPECT_EQ(c.owner->bad_preambles(), 0);
}

TEST(ClusterHopPool, ARequestTheOwnerStartedIsNeverSentAgain) {
    scripted_cluster c;
    const auto failed = c.start();
    ASSERT_TRUE(failed.empty()) << failed;
    const double retried = c.hops("retried");
    // The owner announces it started, then the hop breaks without an
    // answer: even a GET is not sent again (the service may have it).
    for (const auto* request :
         {"GET /t/acme/web/lost HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
          "POST /t/acme/web/lost HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"}) {
        bool closed = false;
        const auto raw = exchange_from("127.0.0.2", c.b->public_port(), request, closed);
        EXPECT_EQ(raw.rfind("HTTP/1.1 502 ", 0), 0u) << raw << c.b->log();
        EXPECT_NE(raw.find("owner_lost"), std::string::npos) << raw;
        EXPECT_EQ(raw.find("TUNNEL-HOP"), std::string::npos) << raw;  // never passed on
    }
    EXPECT_EQ(c.owner->got("/lost"), 2);
    EXPECT_EQ(c.hops("retried"), retried);
    // The owner is not taken for dead: the next request still goes there,
    // and the announcement never reaches the caller.
    auto next = http_request(c.b->public_port(),
                             "GET /t/acme/web/keep HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: "
                             "close\r\n\r\n");
    ASSERT_TRUE(next);
    EXPECT_EQ(next->status, 200) << next->raw;
    EXPECT_EQ(next->raw.find("TUNNEL-HOP"), std::string::npos) << next->raw;
    EXPECT_EQ(c.owner->bad_preambles(), 0);
}

}  // namespace
}  // namespace tunnel::test
