// observe::admin_http_server over real sockets on 127.0.0.1: bounded reads,
// the connection cap, accept back-off on EMFILE, and close() letting the
// io_context's run() return with admin connections still open.
#include <dirent.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <thread>

#include <gtest/gtest.h>

#include <fmt/format.h>

#include "observe/admin_http_server.hpp"
#include "observe/metrics.hpp"
#include "relay/relay_config.hpp"
#include "relay/relay_server.hpp"
#include "support/net.hpp"
#include "support/process.hpp"
#include "support/relay_fixture.hpp"
#include "support/tcp_servers.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using observe::admin_request;
using observe::admin_response;

// A server on its own io_context thread.
struct running_server {
    asio::io_context io;
    observe::metrics_registry registry;
    std::shared_ptr<observe::admin_http_server> server;
    std::thread thread;
    std::vector<std::thread> helpers;  // deliver /api/v1/later's answers
    int mutations = 0;

    void start(observe::admin_server_options o) {
        o.registry = &registry;
        std::vector<observe::admin_endpoint> table{
            {"/healthz", "liveness",
             [](const admin_request&) { return admin_response::text("ok\n"); }, false, true},
            {"/metrics", "Prometheus",
             [this](const admin_request&) { return admin_response::metrics(registry.expose()); }},
            {"/api/v1/echo", "echoes the body",
             [this](const admin_request& r) {
                 ++mutations;
                 return admin_response::text(r.body);
             },
             true},
            {"/api/v1/later", "answers from another thread",
             [this](const admin_request&) {
                 admin_response r;
                 r.later = [this](admin_response::deliver_fn deliver) {
                     helpers.emplace_back([deliver = std::move(deliver)] {
                         std::this_thread::sleep_for(50ms);
                         deliver(admin_response::text("later\n", 202));
                     });
                 };
                 return r;
             }},
            {"/api/v1/never", "never answers",
             [](const admin_request&) {
                 admin_response r;
                 r.later = [](admin_response::deliver_fn) {};
                 return r;
             }},
        };
        auto s = observe::admin_http_server::open(
            io.get_executor(), {asio::ip::make_address("127.0.0.1"), 0}, table, std::move(o));
        ASSERT_TRUE(s) << s.error().message;
        server = *s;
        server->start();
        thread = std::thread([this] { io.run(); });
    }
    // Closes the server and waits for run() to return; how long that took.
    std::chrono::milliseconds stop() {
        const auto t0 = steady::now();
        if (server) server->close();
        if (thread.joinable()) thread.join();
        for (auto& h : helpers) h.join();
        helpers.clear();
        return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t0);
    }
    ~running_server() { stop(); }

    [[nodiscard]] std::uint16_t port() const { return server->port(); }
    // The server's connection count, read on its own thread (the set it
    // counts belongs to that thread; ThreadSanitizer caught a direct read).
    [[nodiscard]] std::size_t open_connections() {
        std::promise<std::size_t> count;
        asio::post(io, [&] { count.set_value(server->open_connections()); });
        return count.get_future().get();
    }
    [[nodiscard]] double counter(const char* name) { return registry.counter(name, "").total(); }
};

std::string get(const std::string& path, const std::string& extra = "") {
    return fmt::format("GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\n{}\r\n", path, extra);
}

// True when the peer closes `fd` within `timeout` (recv returns 0 or an error).
bool closed_by_peer(int fd, std::chrono::milliseconds timeout) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
    char c;
    return ::recv(fd, &c, 1, 0) <= 0;
}

int open_fds() {
    int n = 0;
    if (DIR* d = ::opendir("/proc/self/fd")) {
        while (::readdir(d)) ++n;
        ::closedir(d);
    }
    return n - 3;  // ".", ".." and the directory's own fd
}

TEST(AdminHttpServer, AnswersFromTheTableWithTokenAndHostChecks) {
    running_server s;
    observe::admin_server_options o;
    o.access.bearer_token = "a-long-enough-admin-token";
    int audited = 0;
    o.on_mutation = [&](const admin_request& r, const admin_response& res) {
        audited += r.path == "/api/v1/echo" && res.status == 200;
    };
    s.start(std::move(o));
    const std::string auth = "Authorization: Bearer a-long-enough-admin-token\r\n";
    EXPECT_EQ(http_request(s.port(), get("/metrics"))->status, 401);
    EXPECT_EQ(http_request(s.port(), get("/metrics", "Authorization: Bearer nope\r\n"))->status,
              401);
    EXPECT_EQ(http_request(s.port(), get("/metrics", auth))->status, 200);
    EXPECT_EQ(http_request(s.port(), get("/healthz"))->status, 200);
    EXPECT_EQ(http_request(s.port(),
                           "GET /metrics HTTP/1.1\r\nHost: evil.example:9090\r\n" + auth + "\r\n")
                  ->status,
              421);
    auto head = http_request(s.port(), "HEAD /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
    EXPECT_EQ(head->status, 200);
    EXPECT_EQ(head->raw.size(), head->head.size()) << "HEAD has no body";
    EXPECT_EQ(http_request(s.port(), get("/api/v1/echo", auth))->status, 405);
    EXPECT_EQ(s.mutations, 0);
    auto post = http_request(s.port(), "POST /api/v1/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth +
                                           "Content-Length: 5\r\n\r\nhello");
    EXPECT_EQ(post->status, 200);
    EXPECT_EQ(post->body, "hello");
    EXPECT_EQ(audited, 1);
    auto metrics = http_request(s.port(), get("/metrics", auth))->body;
    EXPECT_NE(metrics.find("admin_http_requests_total{status=\"421\"} 1"), std::string::npos)
        << metrics;
}

TEST(AdminHttpServer, AnswersThatComeLaterAreWaitedForWithinTheReadTimeout) {
    running_server s;
    observe::admin_server_options o;
    o.read_timeout = 300ms;
    s.start(std::move(o));
    auto later = http_request(s.port(), get("/api/v1/later"));
    ASSERT_TRUE(later) << later.error().message;
    EXPECT_EQ(later->status, 202);
    EXPECT_EQ(later->body, "later\n");
    const auto t0 = steady::now();
    auto never = http_request(s.port(), get("/api/v1/never"));
    ASSERT_TRUE(never) << never.error().message;
    EXPECT_EQ(never->status, 504) << never->raw;
    EXPECT_GE(steady::now() - t0, 250ms);
    // A close does not wait for an answer that may never come.
    std::thread caller([&] { (void)http_request(s.port(), get("/api/v1/never")); });
    std::this_thread::sleep_for(50ms);
    EXPECT_LT(s.stop(), 200ms);
    caller.join();
}

TEST(AdminHttpServer, ReadsAreBounded) {
    running_server s;
    observe::admin_server_options o;
    o.max_header_bytes = 2048;
    o.max_body_bytes = 1024;
    o.read_timeout = 400ms;
    s.start(std::move(o));
    auto big_head =
        http_request(s.port(), get("/metrics", "X-Pad: " + std::string(4096, 'a') + "\r\n"));
    ASSERT_TRUE(big_head);
    EXPECT_EQ(big_head->status, 431);
    auto big_body = http_request(
        s.port(),
        "POST /api/v1/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n");
    ASSERT_TRUE(big_body);
    EXPECT_EQ(big_body->status, 413);
    EXPECT_EQ(s.mutations, 0);
    auto garbage = http_request(s.port(), "\x16\x03\x01 not http\r\n\r\n");
    ASSERT_TRUE(garbage);
    EXPECT_EQ(garbage->status, 400);

    // A slow head (slowloris) is cut off at the read deadline.
    int fd = connect_tcp("127.0.0.1", s.port());
    ASSERT_GE(fd, 0);
    ASSERT_GT(::send(fd, "GET /metrics HTTP/1.1\r\nHost: 127", 31, MSG_NOSIGNAL), 0);
    const auto t0 = steady::now();
    EXPECT_TRUE(closed_by_peer(fd, 5s));
    EXPECT_LT(steady::now() - t0, 3s);
    ::close(fd);
}

TEST(AdminHttpServer, ConnectionCapClosesTheExtraOnes) {
    running_server s;
    observe::admin_server_options o;
    o.max_connections = 4;
    o.read_timeout = 30s;
    s.start(std::move(o));
    std::vector<int> idle;
    for (int i = 0; i < 4; ++i) {
        idle.push_back(connect_tcp("127.0.0.1", s.port()));
        ASSERT_GE(idle.back(), 0);
    }
    // Wait until the server holds all four, then one more is closed at once.
    for (auto deadline = steady::now() + 5s; s.open_connections() < 4 && steady::now() < deadline;)
        std::this_thread::sleep_for(5ms);
    int extra = connect_tcp("127.0.0.1", s.port());
    ASSERT_GE(extra, 0);
    EXPECT_TRUE(closed_by_peer(extra, 5s));
    ::close(extra);
    EXPECT_GE(s.counter("admin_http_connections_refused_total"), 1);
    for (int fd : idle) ::close(fd);
    bool answered = false;
    for (auto deadline = steady::now() + 5s; !answered && steady::now() < deadline;) {
        auto r = http_request(s.port(), get("/healthz"), 2s);
        answered = r && r->status == 200;
    }
    EXPECT_TRUE(answered);
}

// close() ends the acceptor and every open admin connection, so run() returns
// at once instead of waiting out their read deadlines.
TEST(AdminHttpServer, CloseLetsRunReturnWithConnectionsOpen) {
    running_server s;
    observe::admin_server_options o;
    o.read_timeout = 60s;
    s.start(std::move(o));
    std::vector<int> idle;
    for (int i = 0; i < 3; ++i) idle.push_back(connect_tcp("127.0.0.1", s.port()));
    ASSERT_GE(::send(idle[2], "GET /metr", 9, MSG_NOSIGNAL), 0);  // one mid-request
    for (auto deadline = steady::now() + 5s; s.open_connections() < 3 && steady::now() < deadline;)
        std::this_thread::sleep_for(5ms);
    ASSERT_EQ(s.open_connections(), 3u);
    const auto took = s.stop();
    EXPECT_LT(took, 2s) << "run() returned only after " << took.count() << " ms";
    for (int fd : idle) {
        EXPECT_TRUE(closed_by_peer(fd, 1s));
        ::close(fd);
    }
    EXPECT_FALSE(port_accepts(s.port()));
}

// EMFILE leaves the connection in the backlog, so the acceptor is readable
// again at once: without a back-off the accept loop spins at 100% CPU.
TEST(AdminHttpServer, AcceptErrorsBackOffInsteadOfSpinning) {
    running_server s;
    observe::admin_server_options o;
    o.accept_backoff_max = 200ms;
    s.start(std::move(o));
    rlimit saved{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
    rlimit tight = saved;
    tight.rlim_cur = static_cast<rlim_t>(open_fds() + 8);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
    // Use up every descriptor with connections the server cannot accept.
    std::vector<int> clients;
    for (;;) {
        int fd = connect_tcp("127.0.0.1", s.port(), 1000);
        if (fd < 0) break;
        clients.push_back(fd);
    }
    ASSERT_FALSE(clients.empty());
    const double before = s.counter("admin_http_accept_errors_total");
    rusage r0{};
    ::getrusage(RUSAGE_SELF, &r0);
    std::this_thread::sleep_for(1500ms);
    rusage r1{};
    ::getrusage(RUSAGE_SELF, &r1);
    const double errors = s.counter("admin_http_accept_errors_total") - before;
    auto cpu = [](const rusage& r) {
        return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
               static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
    };
    const double cpu_seconds = cpu(r1) - cpu(r0);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
    for (int fd : clients) ::close(fd);
    EXPECT_GE(errors, 1) << "the accepts should have failed with EMFILE";
    EXPECT_LE(errors, 40) << "accept retried " << errors << " times in 1.5 s: no back-off";
    EXPECT_LT(cpu_seconds, 0.5) << "the process burnt " << cpu_seconds << " s of CPU in 1.5 s";
    // And it recovers once descriptors are free again.
    bool answered = false;
    for (auto deadline = steady::now() + 5s; !answered && steady::now() < deadline;) {
        auto r = http_request(s.port(), get("/healthz"), 2s);
        answered = r && r->status == 200;
    }
    EXPECT_TRUE(answered);
}

// The relay in-process: its shutdown closes the admin server and its open
// connections, so run() returns (no io.stop(), no _Exit).
TEST(AdminHttpServer, RelayShutdownClosesTheAdminListenerAndItsConnections) {
    auto dir = temp_dir::create("relay-inproc");
    ASSERT_TRUE(dir);
    ASSERT_TRUE(write_text_file(dir->file("jwt.secret"), "0123456789abcdef0123456789abcdef\n"));
    auto config = relay::dev_config("127.0.0.1:0", "127.0.0.1:0", dir->file("jwt.secret"));
    ASSERT_TRUE(config) << config.error().message;
    config->shutdown.drain_timeout = 1s;
    asio::io_context io;
    auto server = relay::relay_server::create(io, std::move(*config));
    ASSERT_TRUE(server) << server.error().message;
    (*server)->start();
    std::promise<void> ran;
    auto returned = ran.get_future();
    std::thread runner([&] {
        io.run();
        ran.set_value();
    });
    const auto admin = (*server)->admin_port();
    ASSERT_EQ(http_request(admin, get("/healthz"))->status, 200);
    int idle = connect_tcp("127.0.0.1", admin);  // an admin connection that says nothing
    ASSERT_GE(idle, 0);
    std::this_thread::sleep_for(50ms);
    bool done = false;
    const auto t0 = steady::now();
    asio::post(io, [&] { (*server)->shutdown([&] { done = true; }); });
    const bool stopped = returned.wait_for(5s) == std::future_status::ready;
    if (!stopped) io.stop();  // so the test ends either way
    runner.join();
    EXPECT_TRUE(done);
    EXPECT_TRUE(stopped) << "run() did not return within 5 s of the shutdown";
    EXPECT_LT(steady::now() - t0, 5s);
    EXPECT_TRUE(closed_by_peer(idle, 1s));
    ::close(idle);
    EXPECT_FALSE(port_accepts(admin));
}

}  // namespace
}  // namespace tunnel::test
