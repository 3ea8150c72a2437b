// The relay on several worker threads, in-process (relay_server::create on
// an io_context run by a thread of the test, workers 1..N-1 started by the
// relay), with real `tunnel connect` children and real origins: tunnels are
// spread over the workers, requests from many callers at once reach the
// right tunnel whichever worker accepted them (a keep-alive connection moves
// between workers as its requests name tunnels pinned to different ones),
// and shutdown with requests in flight on several workers returns cleanly.
// Meant to run under the tsan preset as well as asan (docs/relay.md
// "Threading model").
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/asio.hpp"
#include "relay/relay_config.hpp"
#include "relay/relay_server.hpp"
#include "support/net.hpp"
#include "support/process.hpp"
#include "support/relay_fixture.hpp"
#include "support/streaming_origin.hpp"
#include "support/tcp_servers.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

bool send_all(int fd, const std::string& text) {
    std::size_t sent = 0;
    while (sent < text.size()) {
        ssize_t n = ::send(fd, text.data() + sent, text.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) return false;
        sent += static_cast<std::size_t>(n);
    }
    return true;
}

// One response with a Content-Length body from a keep-alive connection:
// status and body, or status 0 when the connection ended first.
struct reply {
    int status = 0;
    std::string head;
    std::string body;
};

reply read_reply(int fd, std::string& carry, steady::time_point deadline) {
    reply r;
    char buf[16384];
    auto fill = [&]() {
        while (steady::now() < deadline) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) return false;
            carry.append(buf, static_cast<std::size_t>(n));
            return true;
        }
        return false;
    };
    std::size_t end = 0;
    while ((end = carry.find("\r\n\r\n")) == std::string::npos)
        if (!fill()) return r;
    r.head = carry.substr(0, end + 4);
    std::size_t length = 0;
    for (std::string_view name : {"Content-Length: ", "content-length: "})
        if (auto at = r.head.find(name); at != std::string::npos)
            length = std::stoul(r.head.substr(at + name.size()));
    while (carry.size() < end + 4 + length)
        if (!fill()) return r;
    r.body = carry.substr(end + 4, length);
    carry.erase(0, end + 4 + length);
    r.status = std::stoi(r.head.substr(9, 3));
    return r;
}

std::string echo(const std::string& name, const std::string& body, bool close = false) {
    return fmt::format(
        "POST /t/acme/{}/echo HTTP/1.1\r\nHost: relay.test\r\nContent-Length: {}\r\n{}\r\n{}", name,
        body.size(), close ? "Connection: close\r\n" : "", body);
}

class RelayWorkers : public ::testing::Test {
  protected:
    void SetUp() override {
        auto h = temp_dir::create("tunnel-relay-workers");
        ASSERT_TRUE(h);
        home.emplace(std::move(*h));
        ASSERT_TRUE(write_text_file(home->file("secret"),
                                    "relay-workers-test-secret-0123456789abcdef\n", 0600));
        cli_options o;
        o.home = home->path();
        auto t = run_tunnel({"token", "--secret-file", home->file("secret"), "--tenant", "acme",
                             "--allow", "w*", "--ttl", "1h", "--max-streams", "256"},
                            o);
        ASSERT_TRUE(t.ok()) << t.describe();
        ASSERT_TRUE(write_text_file(home->file("token"), t.out, 0600));
    }

    void TearDown() override {
        for (auto& c : clients) c.terminate();
        if (runner.joinable()) {
            asio::post(io, [this] {
                if (server) server->close();
            });
            if (!streaming_origin::wait_until([&] { return returned.load(); }, 10s)) {
                ADD_FAILURE() << "io_context::run() did not return after close()";
                io.stop();
            }
            runner.join();
        }
        server.reset();
    }

    // The relay with `workers` threads and `tunnels` tunnels (w0, w1, ...),
    // each a `tunnel connect` in front of its own origin.
    void start(unsigned workers, unsigned tunnels, std::chrono::milliseconds drain = 10s) {
        auto config = relay::dev_config("127.0.0.1:0", "127.0.0.1:0", home->file("secret"));
        ASSERT_TRUE(config) << config.error().message;
        config->workers = workers;
        config->shutdown.drain_timeout = drain;
        auto s = relay::relay_server::create(io, std::move(*config));
        ASSERT_TRUE(s) << s.error().message;
        server = std::move(*s);
        ASSERT_EQ(server->workers(), workers);
        server->start();
        runner = std::thread([this] {
            io.run();
            returned = true;
        });
        port = server->public_port();
        for (unsigned i = 0; i < tunnels; ++i) {
            auto org = streaming_origin::start();
            ASSERT_TRUE(org) << org.error().message;
            origins.push_back(std::move(*org));
            const std::string out = home->file(fmt::format("connect{}.out", i));
            auto c = spawn_tunnel({"connect", fmt::format("ws://127.0.0.1:{}/v1/tunnel", port),
                                   "--token-file", home->file("token"), "--json", "--expose",
                                   fmt::format("w{}=127.0.0.1:{}", i, origins.back()->port())},
                                  home->path(), out, home->file(fmt::format("connect{}.err", i)));
            ASSERT_TRUE(c) << c.error().message;
            clients.push_back(std::move(*c));
            ASSERT_TRUE(streaming_origin::wait_until(
                [&] {
                    return read_text_file(out).value_or("").find("\"published\"") !=
                           std::string::npos;
                },
                20s))
                << read_text_file(home->file(fmt::format("connect{}.err", i))).value_or("");
        }
    }

    // The worker each tunnel is pinned to, from the admin API.
    std::set<unsigned> workers_in_use() {
        auto r = http_request(server->admin_port(),
                              "GET /api/v1/tunnels HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: "
                              "close\r\n\r\n");
        EXPECT_TRUE(r) << (r ? "" : r.error().message);
        std::set<unsigned> used;
        if (!r) return used;
        auto j = nlohmann::json::parse(r->body, nullptr, false);
        if (!j.is_object()) return used;
        for (const auto& t : j["tunnels"]) used.insert(t.value("worker", 999u));
        return used;
    }

    std::optional<temp_dir> home;
    std::vector<std::unique_ptr<streaming_origin>> origins;
    asio::io_context io;
    std::unique_ptr<relay::relay_server> server;
    std::thread runner;
    std::atomic<bool> returned{false};
    std::vector<child_process> clients;
    std::uint16_t port = 0;
};

TEST_F(RelayWorkers, ConcurrentRequestsToTunnelsOnDifferentWorkersAllAnswerRight) {
    constexpr unsigned tunnels = 4;
    start(2, tunnels);
    EXPECT_EQ(workers_in_use(), (std::set<unsigned>{0, 1})) << "tunnels spread over both workers";

    // 8 callers at once, each on one keep-alive connection whose requests go
    // round the four names (so the connection moves between workers), plus
    // a Connection: close request on a fresh connection every fourth time.
    constexpr int callers = 8;
    constexpr int rounds = 40;
    std::vector<std::array<int, tunnels>> sent(callers);
    std::vector<std::string> failures(callers);
    std::vector<std::thread> threads;
    for (int c = 0; c < callers; ++c)
        threads.emplace_back([&, c] {
            sent[c].fill(0);
            int fd = connect_tcp("127.0.0.1", port);
            if (fd < 0) {
                failures[c] = "cannot connect";
                return;
            }
            std::string carry;
            for (int i = 0; i < rounds && failures[c].empty(); ++i) {
                const unsigned t = static_cast<unsigned>(c + i) % tunnels;
                const std::string name = fmt::format("w{}", t);
                const std::string body = fmt::format("caller {} request {} for {}", c, i, name);
                if (i % 4 == 3) {
                    auto r = http_request(port, echo(name, body, true));
                    if (!r || r->status != 200 || r->body != body)
                        failures[c] = fmt::format("close request {} to {}: {}", i, name,
                                                  r ? r->raw : r.error().message);
                    ++sent[c][t];
                    continue;
                }
                if (!send_all(fd, echo(name, body))) {
                    failures[c] = fmt::format("send of request {} failed", i);
                    break;
                }
                ++sent[c][t];
                auto r = read_reply(fd, carry, steady::now() + 10s);
                if (r.status != 200 || r.body != body)
                    failures[c] =
                        fmt::format("keep-alive request {} to {}: status {} head {} body {:?}", i,
                                    name, r.status, r.head, r.body);
            }
            ::close(fd);
        });
    for (auto& t : threads) t.join();
    for (int c = 0; c < callers; ++c) EXPECT_EQ(failures[c], "") << "caller " << c;
    // Every request reached the origin behind the name it named.
    for (unsigned t = 0; t < tunnels; ++t) {
        int expected = 0;
        for (int c = 0; c < callers; ++c) expected += sent[c][t];
        EXPECT_EQ(origins[t]->requests(), expected) << "origin of w" << t;
    }
}

TEST_F(RelayWorkers, ShutdownWithStreamsInFlightOnSeveralWorkersReturnsCleanly) {
    constexpr unsigned tunnels = 4;
    start(2, tunnels, 10s);
    EXPECT_EQ(workers_in_use(), (std::set<unsigned>{0, 1}));
    // A stream through every tunnel (2 s of lines each), the first line seen.
    std::vector<int> fds;
    std::vector<std::string> seen(tunnels);
    for (unsigned t = 0; t < tunnels; ++t) {
        int fd = connect_tcp("127.0.0.1", port);
        ASSERT_GE(fd, 0);
        fds.push_back(fd);
        ASSERT_TRUE(send_all(fd, fmt::format("GET /t/acme/w{}/stream?n=10&ms=200 HTTP/1.1\r\n"
                                             "Host: relay.test\r\n\r\n",
                                             t)));
    }
    for (unsigned t = 0; t < tunnels; ++t) {
        char buf[4096];
        const auto until = steady::now() + 10s;
        while (seen[t].find("{\"i\":0}") == std::string::npos && steady::now() < until) {
            pollfd p{fds[t], POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            ssize_t n = ::recv(fds[t], buf, sizeof buf, 0);
            if (n <= 0) break;
            seen[t].append(buf, static_cast<std::size_t>(n));
        }
        ASSERT_NE(seen[t].find("{\"i\":0}"), std::string::npos) << seen[t];
    }
    std::atomic<bool> done{false};
    const auto asked = steady::now();
    server->shutdown([&] { done = true; });
    // Every stream is answered in full, then its connection closes.
    for (unsigned t = 0; t < tunnels; ++t) {
        char buf[4096];
        bool eof = false;
        const auto until = steady::now() + 15s;
        while (!eof && steady::now() < until) {
            pollfd p{fds[t], POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            ssize_t n = ::recv(fds[t], buf, sizeof buf, 0);
            if (n <= 0) {
                eof = true;
                break;
            }
            seen[t].append(buf, static_cast<std::size_t>(n));
        }
        EXPECT_TRUE(eof) << "stream " << t;
        EXPECT_NE(seen[t].find("{\"i\":9}"), std::string::npos) << seen[t];
        EXPECT_NE(seen[t].find("0\r\n\r\n"), std::string::npos) << seen[t];
        ::close(fds[t]);
    }
    ASSERT_TRUE(streaming_origin::wait_until([&] { return returned.load(); }, 13s))
        << "io_context::run() did not return";
    EXPECT_LT(steady::now() - asked, 8s);
    EXPECT_TRUE(done);
    runner.join();
    // Joins workers 1..N-1: they ran out of work by themselves.
    const auto destroying = steady::now();
    server.reset();
    EXPECT_LT(steady::now() - destroying, 1s) << "a worker did not return by itself";
    for (auto& o : origins) EXPECT_EQ(o->streams_completed(), 1);
}

TEST_F(RelayWorkers, CloseWithStreamsInFlightOnSeveralWorkersEndsEverything) {
    constexpr unsigned tunnels = 4;
    start(2, tunnels, 30s);
    std::vector<int> fds;
    for (unsigned t = 0; t < tunnels; ++t) {
        int fd = connect_tcp("127.0.0.1", port);
        ASSERT_GE(fd, 0);
        fds.push_back(fd);
        ASSERT_TRUE(send_all(fd, fmt::format("GET /t/acme/w{}/stream?n=400&ms=50 HTTP/1.1\r\n"
                                             "Host: relay.test\r\n\r\n",
                                             t)));
    }
    // Every stream under way.
    ASSERT_TRUE(streaming_origin::wait_until(
        [&] {
            for (auto& o : origins)
                if (o->requests() < 1) return false;
            return true;
        },
        10s));
    const auto asked = steady::now();
    asio::post(io, [this] { server->close(); });
    for (int fd : fds) {
        char buf[4096];
        bool ended = false;
        const auto until = steady::now() + 5s;
        while (!ended && steady::now() < until) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            ended = ::recv(fd, buf, sizeof buf, 0) <= 0;
        }
        EXPECT_TRUE(ended) << "a caller's connection was left open";
        ::close(fd);
    }
    ASSERT_TRUE(streaming_origin::wait_until([&] { return returned.load(); }, 5s));
    EXPECT_LT(steady::now() - asked, 3s);
    runner.join();
    const auto destroying = steady::now();
    server.reset();
    EXPECT_LT(steady::now() - destroying, 1s) << "a worker did not return by itself";
}

}  // namespace
}  // namespace tunnel::test
