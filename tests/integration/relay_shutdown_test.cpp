// Clean shutdown of the relay, in-process: relay_server::create on an
// io_context run on a thread of the test, a real `tunnel connect` child
// attached to it, a streaming origin, real caller sockets. shutdown() (and
// close()) must close everything the relay owns so that io_context::run()
// returns by itself, within the drain deadline plus a margin, with the
// in-flight request answered in full or closed cleanly. Run under the asan
// preset, leaks are reported when the test binary exits.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <thread>

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

// What a caller's socket saw until the peer closed it (or the deadline).
struct caller_read {
    std::string bytes;
    bool eof = false;    // recv returned 0: the relay closed cleanly
    bool reset = false;  // ECONNRESET
};

// Reads until `stop` is in the bytes (when given), EOF, an error or the deadline.
caller_read read_from(int fd, steady::time_point deadline, const std::string& stop = {}) {
    caller_read r;
    char buf[8192];
    while (steady::now() < deadline) {
        if (!stop.empty() && r.bytes.find(stop) != std::string::npos) break;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n == 0) {
            r.eof = true;
            break;
        }
        if (n < 0) {
            r.reset = errno == ECONNRESET;
            break;
        }
        r.bytes.append(buf, static_cast<std::size_t>(n));
    }
    return r;
}

bool send_all(int fd, const std::string& text) {
    return ::send(fd, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size());
}

std::string get(const std::string& path, bool keep_alive = true) {
    return fmt::format("GET {} HTTP/1.1\r\nHost: relay.test\r\n{}\r\n", path,
                       keep_alive ? "" : "Connection: close\r\n");
}

class RelayShutdown : public ::testing::Test {
  protected:
    void SetUp() override {
        auto h = temp_dir::create("tunnel-relay-shutdown");
        ASSERT_TRUE(h);
        home.emplace(std::move(*h));
        ASSERT_TRUE(write_text_file(home->file("secret"),
                                    "relay-shutdown-test-secret-0123456789abcdef\n", 0600));
        cli_options o;
        o.home = home->path();
        auto t = run_tunnel({"token", "--secret-file", home->file("secret"), "--tenant", "acme",
                             "--allow", "llm", "--ttl", "1h"},
                            o);
        ASSERT_TRUE(t.ok()) << t.describe();
        ASSERT_TRUE(write_text_file(home->file("token"), t.out, 0600));
        auto org = streaming_origin::start();
        ASSERT_TRUE(org) << org.error().message;
        origin = std::move(*org);
    }

    void TearDown() override {
        for (int fd : fds) ::close(fd);
        if (connect) connect->terminate();
        if (runner.joinable()) {
            // A test that failed before its shutdown: close, and let run() end.
            asio::post(io, [this] {
                if (server) server->close();
            });
            if (!wait_returned(10s)) {
                ADD_FAILURE() << "io_context::run() did not return after close()";
                io.stop();  // only so that a failed test does not hang the suite
            }
            runner.join();
        }
        server.reset();
    }

    // The relay in-process, on `io` run by `runner`; `tunnel connect` publishes llm.
    void start(std::chrono::milliseconds drain_timeout) {
        auto config = relay::dev_config("127.0.0.1:0", "127.0.0.1:0", home->file("secret"));
        ASSERT_TRUE(config) << config.error().message;
        config->shutdown.drain_timeout = drain_timeout;
        auto s = relay::relay_server::create(io, std::move(*config));
        ASSERT_TRUE(s) << s.error().message;
        server = std::move(*s);
        server->start();
        runner = std::thread([this] {
            io.run();
            returned_at = steady::now();
            returned = true;
        });
        port = server->public_port();
        auto c = spawn_tunnel({"connect", fmt::format("ws://127.0.0.1:{}/v1/tunnel", port),
                               "--token-file", home->file("token"), "--json", "--keepalive", "2s",
                               "--expose", fmt::format("llm=127.0.0.1:{}", origin->port())},
                              home->path(), home->file("connect.out"), home->file("connect.err"));
        ASSERT_TRUE(c) << c.error().message;
        connect.emplace(std::move(*c));
        ASSERT_TRUE(streaming_origin::wait_until(
            [&] {
                return read_text_file(home->file("connect.out"))
                           .value_or("")
                           .find("\"published\"") != std::string::npos;
            },
            20s))
            << read_text_file(home->file("connect.err")).value_or("");
    }

    // A keep-alive connection that has had one answered request and is now idle.
    int idle_connection() {
        int fd = connect_tcp("127.0.0.1", port);
        EXPECT_GE(fd, 0);
        if (fd < 0) return fd;
        fds.push_back(fd);
        EXPECT_TRUE(send_all(fd, get("/t/acme/llm/hello")));
        auto r = read_from(fd, steady::now() + 10s, "hello\n");
        EXPECT_EQ(r.bytes.substr(0, 12), "HTTP/1.1 200") << r.bytes;
        EXPECT_FALSE(r.eof);
        return fd;
    }

    // A streaming request whose first NDJSON line has arrived.
    int streaming_request(int lines, int ms, std::string& seen) {
        int fd = connect_tcp("127.0.0.1", port);
        EXPECT_GE(fd, 0);
        if (fd < 0) return fd;
        fds.push_back(fd);
        EXPECT_TRUE(send_all(fd, get(fmt::format("/t/acme/llm/stream?n={}&ms={}", lines, ms))));
        auto r = read_from(fd, steady::now() + 10s, "{\"i\":0}");
        EXPECT_NE(r.bytes.find("{\"i\":0}"), std::string::npos) << r.bytes;
        seen = r.bytes;
        return fd;
    }

    bool wait_returned(std::chrono::milliseconds timeout) {
        return streaming_origin::wait_until([&] { return returned.load(); }, timeout);
    }

    std::optional<temp_dir> home;
    std::unique_ptr<streaming_origin> origin;
    asio::io_context io;
    std::unique_ptr<relay::relay_server> server;
    std::thread runner;
    std::atomic<bool> returned{false};
    steady::time_point returned_at;
    std::optional<child_process> connect;
    std::uint16_t port = 0;
    std::vector<int> fds;
};

TEST_F(RelayShutdown, DrainsTheStreamClosesTheRestAndRunReturns) {
    start(10s);
    int idle_a = idle_connection();
    int idle_b = idle_connection();
    int idle_c = idle_connection();
    std::string stream;
    int fd = streaming_request(10, 200, stream);  // 2 s of lines

    std::atomic<bool> done{false};
    const auto asked = steady::now();
    server->shutdown([&] { done = true; });

    // No new connections; a new request on an open connection is refused.
    EXPECT_TRUE(streaming_origin::wait_until([&] { return !port_accepts(port); }, 2s));
    ASSERT_TRUE(send_all(idle_a, get("/t/acme/llm/hello")));
    auto refused = read_from(idle_a, steady::now() + 5s);
    EXPECT_EQ(refused.bytes.substr(0, 12), "HTTP/1.1 503") << refused.bytes;
    EXPECT_NE(refused.bytes.find("shutting_down"), std::string::npos) << refused.bytes;
    EXPECT_TRUE(refused.eof);

    // The request in flight is answered in full, then its connection closes.
    auto rest = read_from(fd, steady::now() + 15s);
    stream += rest.bytes;
    EXPECT_NE(stream.find("{\"i\":9}"), std::string::npos) << stream;
    EXPECT_NE(stream.find("0\r\n\r\n"), std::string::npos) << stream;
    EXPECT_TRUE(rest.eof);
    EXPECT_EQ(origin->streams_completed(), 1);

    // run() returns by itself: well before the 10 s drain deadline, since the
    // stream ended after ~2 s and the tunnel closes within a second.
    ASSERT_TRUE(wait_returned(10s + 3s)) << "io_context::run() did not return";
    EXPECT_LT(returned_at - asked, 6s);
    EXPECT_TRUE(done);
    for (int idle : {idle_b, idle_c}) {
        auto r = read_from(idle, steady::now() + 2s);
        EXPECT_TRUE(r.eof) << "idle keep-alive connection left open: " << r.bytes;
        EXPECT_TRUE(r.bytes.empty()) << r.bytes;
    }
    runner.join();
    server.reset();  // after run(), before the io_context: nothing is left on it

    // The tunnel was told why (SSH disconnect and WebSocket close reason).
    EXPECT_TRUE(connect->running()) << "tunnel connect reconnects by itself";
    EXPECT_TRUE(streaming_origin::wait_until(
        [&] {
            return read_text_file(home->file("connect.err"))
                       .value_or("")
                       .find("relay shutting down") != std::string::npos;
        },
        5s))
        << read_text_file(home->file("connect.err")).value_or("");
}

TEST_F(RelayShutdown, DrainDeadlineCutsALongStreamCleanly) {
    start(1s);
    (void)idle_connection();
    std::string stream;
    int fd = streaming_request(200, 50, stream);  // 10 s of lines

    const auto asked = steady::now();
    server->shutdown({});
    auto rest = read_from(fd, steady::now() + 10s);
    stream += rest.bytes;
    EXPECT_TRUE(rest.eof || rest.reset) << "the caller must see its connection end";
    EXPECT_EQ(stream.find("HTTP/1.1 5"), std::string::npos)
        << "no error response in the middle of a stream: " << stream;
    EXPECT_EQ(stream.find("{\"i\":199}"), std::string::npos);

    // Drain deadline (1 s) + the tunnel's close (<= 1 s) + margin.
    ASSERT_TRUE(wait_returned(8s)) << "io_context::run() did not return";
    EXPECT_LT(returned_at - asked, 4s);
    runner.join();
    server.reset();
    // The relay closed the channel, so the tunnel client closed the origin's connection.
    EXPECT_TRUE(streaming_origin::wait_until([&] { return origin->streams_aborted() == 1; }, 5s));
}

TEST_F(RelayShutdown, CloseEndsEverythingAtOnce) {
    start(30s);
    (void)idle_connection();
    std::string stream;
    int fd = streaming_request(200, 50, stream);

    const auto asked = steady::now();
    asio::post(io, [this] { server->close(); });
    auto rest = read_from(fd, steady::now() + 5s);
    EXPECT_TRUE(rest.eof || rest.reset);
    ASSERT_TRUE(wait_returned(5s)) << "io_context::run() did not return";
    EXPECT_LT(returned_at - asked, 2s) << "close() does not wait for the 30 s drain";
    runner.join();
    server.reset();
}

// `tunnel relay` as a process: SIGTERM drains (30 s here), a second SIGTERM
// closes at once, and the process exits 0 because run() returned.
TEST(RelayShutdownProcess, SecondSignalClosesAtOnceAndTheProcessExits) {
    auto relay = relay_fixture::start({.extra_yaml = "shutdown:\n  drain_timeout: 30s\n"});
    ASSERT_TRUE(relay) << relay.error().message;
    auto origin = streaming_origin::start();
    ASSERT_TRUE(origin) << origin.error().message;
    auto tok = relay->mint("acme", "llm");
    ASSERT_TRUE(tok) << tok.error().message;
    auto client = relay->publish("acme", *tok, "llm", (*origin)->port());
    ASSERT_TRUE(client) << client.error().message;
    int fd = connect_tcp("127.0.0.1", relay->public_port());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(send_all(fd, get("/t/acme/llm/stream?n=400&ms=50")));
    auto first = read_from(fd, steady::now() + 10s, "{\"i\":0}");
    ASSERT_NE(first.bytes.find("{\"i\":0}"), std::string::npos) << first.bytes;

    relay->process().signal(SIGTERM);
    EXPECT_FALSE(relay->process().wait(1s).has_value()) << "the first signal drains";
    const auto second = steady::now();
    relay->process().signal(SIGTERM);
    auto code = relay->process().wait(5s);
    ASSERT_TRUE(code.has_value()) << relay->log();
    EXPECT_EQ(*code, 0) << relay->log();
    EXPECT_LT(steady::now() - second, 3s);
    EXPECT_NE(relay->log().find("closing at once"), std::string::npos) << relay->log();
    auto rest = read_from(fd, steady::now() + 5s);
    EXPECT_TRUE(rest.eof || rest.reset);
    ::close(fd);
}

}  // namespace
}  // namespace tunnel::test
