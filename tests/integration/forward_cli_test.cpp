// `tunnel forward` data paths against a real sshd: -L, -R (port 0 too), -D
// through curl, IPv6, status endpoints, clean exit on SIGTERM, bad input.
#include <sys/stat.h>

#include <csignal>
#include <regex>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "forward_test_support.hpp"

namespace tunnel::test::fwd {
namespace {

constexpr std::size_t big = 64u << 20;

class ForwardCli : public ::testing::Test {
  protected:
    void SetUp() override {
        auto s = sshd_fixture::start();
        ASSERT_TRUE(s) << s.error().message;
        sshd.emplace(std::move(*s));
        auto e = echo_server::start();
        ASSERT_TRUE(e) << e.error().message;
        echo = std::move(*e);
    }
    uint16_t port() {
        auto p = unused_port();
        EXPECT_TRUE(p);
        return p.value_or(1);
    }
    std::optional<sshd_fixture> sshd;
    std::unique_ptr<echo_server> echo;
};

TEST_F(ForwardCli, LocalForwardCarries64MiBBothWaysIntact) {
    const uint16_t lp = port();
    auto fp = start_forward(fixture_flags(*sshd),
                            {"-L", fmt::format("{}:127.0.0.1:{}", lp, echo->port())});
    ASSERT_TRUE(fp) << fp.error().message;
    ASSERT_TRUE(wait_round_trip("127.0.0.1", lp, 10s)) << fp->err();

    const auto data = random_bytes(big, 1);
    int fd = connect_tcp("127.0.0.1", lp);
    ASSERT_GE(fd, 0);
    auto got = exchange(fd, data, 15000);
    ::close(fd);
    ASSERT_TRUE(got) << got.error().message << "\n" << fp->err();
    EXPECT_EQ(got->size(), data.size());
    EXPECT_EQ(sha256_hex(*got), sha256_hex(data));
}

TEST_F(ForwardCli, RemoteForwardCarries64MiBBothWaysIntact) {
    const uint16_t rp = port();
    auto fp = start_forward(fixture_flags(*sshd),
                            {"-R", fmt::format("{}:127.0.0.1:{}", rp, echo->port())});
    ASSERT_TRUE(fp) << fp.error().message;
    ASSERT_TRUE(wait_round_trip("127.0.0.1", rp, 10s)) << fp->err();

    const auto data = random_bytes(big, 2);
    int fd = connect_tcp("127.0.0.1", rp);
    ASSERT_GE(fd, 0);
    auto got = exchange(fd, data, 15000);
    ::close(fd);
    ASSERT_TRUE(got) << got.error().message << "\n" << fp->err();
    EXPECT_EQ(sha256_hex(*got), sha256_hex(data));
}

TEST_F(ForwardCli, RemotePortZeroReportsTheAllocatedPort) {
    const uint16_t sp = port();
    auto fp =
        start_forward(fixture_flags(*sshd), {"-R", fmt::format("0:127.0.0.1:{}", echo->port()),
                                             "--status-addr", fmt::format("127.0.0.1:{}", sp)});
    ASSERT_TRUE(fp) << fp.error().message;
    std::smatch m;
    std::string out;
    static const std::regex re(R"(Allocated port (\d+) for remote forward to 127\.0\.0\.1:(\d+))");
    ASSERT_TRUE(eventually([&] { return out = fp->out(), std::regex_search(out, m, re); }, 10s))
        << "stdout: " << fp->out() << "\nstderr: " << fp->err();
    const int allocated = std::stoi(m[1]);
    ASSERT_GT(allocated, 0);
    EXPECT_EQ(std::stoi(m[2]), echo->port());
    EXPECT_TRUE(round_trip("127.0.0.1", static_cast<uint16_t>(allocated))) << fp->err();

    auto st = http_get(sp, "/status");
    ASSERT_TRUE(st);
    auto j = nlohmann::json::parse(st->body);
    EXPECT_EQ(j["forwards"][0]["bound_port"].get<int>(), allocated);
    EXPECT_EQ(j["forwards"][0]["state"], "up");
}

TEST_F(ForwardCli, DynamicForwardServesCurlThroughSocks5HostnameSocks5AndSocks4a) {
    auto origin = http_origin::start("hello through socks\n");
    ASSERT_TRUE(origin);
    const uint16_t dp = port();
    auto fp = start_forward(fixture_flags(*sshd), {"-D", std::to_string(dp)});
    ASSERT_TRUE(fp) << fp.error().message;
    ASSERT_TRUE(wait_for_port(dp, 10s));
    const auto url_name = fmt::format("http://localhost:{}/", (*origin)->port());
    const auto url_ip = fmt::format("http://127.0.0.1:{}/", (*origin)->port());
    // The connection succeeds only once the session is up: retry a little.
    run_result r;
    ASSERT_TRUE(eventually(
        [&] {
            r = run({"curl", "-sS", "--max-time", "5", "--socks5-hostname",
                     fmt::format("127.0.0.1:{}", dp), url_name});
            return r.ok();
        },
        10s))
        << r.describe() << "\n"
        << fp->err();
    EXPECT_EQ(r.out, "hello through socks\n");

    r = run(
        {"curl", "-sS", "--max-time", "5", "--socks5", fmt::format("127.0.0.1:{}", dp), url_ip});
    EXPECT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(r.out, "hello through socks\n");
    r = run(
        {"curl", "-sS", "--max-time", "5", "--socks4a", fmt::format("127.0.0.1:{}", dp), url_name});
    EXPECT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(r.out, "hello through socks\n");
    EXPECT_EQ((*origin)->requests(), 3);
}

TEST_F(ForwardCli, DynamicForwardRequiresUserPasswordFromFileAndSurvivesGarbage) {
    auto origin = http_origin::start("secret page\n");
    ASSERT_TRUE(origin);
    auto dir = temp_dir::create();
    ASSERT_TRUE(dir);
    const auto creds = dir->file("socks.pass");
    ASSERT_TRUE(write_text_file(creds, "alice:s3cret\n", 0600));
    const uint16_t dp = port();
    auto fp =
        start_forward(fixture_flags(*sshd), {"-D", std::to_string(dp), "--socks-auth-file", creds});
    ASSERT_TRUE(fp) << fp.error().message;
    ASSERT_TRUE(wait_for_port(dp, 10s));
    const auto proxy = fmt::format("127.0.0.1:{}", dp);
    const auto url = fmt::format("http://localhost:{}/", (*origin)->port());

    // Garbage first: the forward logs it and keeps serving.
    int fd = connect_tcp("127.0.0.1", dp);
    ASSERT_GE(fd, 0);
    auto g = exchange(fd, std::string("\x16\x03\x01garbage that is not socks"), 3000);
    ::close(fd);
    ASSERT_TRUE(g) << g.error().message;
    EXPECT_TRUE(g->empty());  // closed without a reply

    run_result r;
    ASSERT_TRUE(eventually(
        [&] {
            r = run({"curl", "-sS", "--max-time", "5", "--socks5-hostname", proxy, "-U",
                     "alice:s3cret", url});
            return r.ok();
        },
        10s))
        << r.describe() << "\n"
        << fp->err();
    EXPECT_EQ(r.out, "secret page\n");

    r = run(
        {"curl", "-sS", "--max-time", "5", "--socks5-hostname", proxy, "-U", "alice:wrong", url});
    EXPECT_FALSE(r.ok());
    r = run({"curl", "-sS", "--max-time", "5", "--socks5-hostname", proxy,
             url});  // no credentials offered
    EXPECT_FALSE(r.ok());
    EXPECT_EQ((*origin)->requests(), 1);
    const auto log = fp->err();
    EXPECT_NE(log.find("not a SOCKS request"), std::string::npos) << log;
    EXPECT_NE(log.find("authentication failed for user \"alice\""), std::string::npos) << log;
    EXPECT_EQ(log.find("s3cret"), std::string::npos) << "the password must never be logged";
}

TEST_F(ForwardCli, Ipv6LoopbackOnBothSides) {
    auto echo6 = echo_server::start("::1");
    if (!echo6) GTEST_SKIP() << "no IPv6 loopback here: " << echo6.error().message;
    // The fixture's sshd is IPv4-only (AddressFamily inet): this one may reach ::1.
    sshd_options so;
    so.extra_config = {"AddressFamily any"};
    auto sshd6 = sshd_fixture::start(so);
    ASSERT_TRUE(sshd6) << sshd6.error().message;
    const uint16_t lp = port();
    auto fp = start_forward(fixture_flags(*sshd6),
                            {"-L", fmt::format("[::1]:{}:[::1]:{}", lp, (*echo6)->port())});
    ASSERT_TRUE(fp) << fp.error().message;
    ASSERT_TRUE(wait_round_trip("::1", lp, 10s)) << fp->err();
    const auto data = random_bytes(1 << 20, 3);
    int fd = connect_tcp("::1", lp);
    ASSERT_GE(fd, 0);
    auto got = exchange(fd, data, 10000);
    ::close(fd);
    ASSERT_TRUE(got);
    EXPECT_EQ(sha256_hex(*got), sha256_hex(data));
    EXPECT_FALSE(port_accepts(lp, "127.0.0.1")) << "bound to ::1 only";
}

TEST_F(ForwardCli, StatusEndpointsAndCleanExitOnSigterm) {
    const uint16_t lp = port(), sp = port();
    auto fp =
        start_forward(fixture_flags(*sshd), {"-L", fmt::format("{}:127.0.0.1:{}", lp, echo->port()),
                                             "--status-addr", fmt::format("127.0.0.1:{}", sp)});
    ASSERT_TRUE(fp) << fp.error().message;
    ASSERT_TRUE(wait_round_trip("127.0.0.1", lp, 10s)) << fp->err();
    ASSERT_TRUE(round_trip("127.0.0.1", lp, std::string(100000, 'x')));

    auto health = http_get(sp, "/healthz");
    ASSERT_TRUE(health);
    EXPECT_EQ(health->status, 200);
    auto metrics = http_get(sp, "/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_NE(metrics->body.find("# TYPE tunnel_forward_bytes_out_total counter"),
              std::string::npos);
    static const std::regex bytes_re(
        R"(tunnel_forward_bytes_out_total\{forward="-L [^"]+",kind="local"\} (\d+))");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(metrics->body, m, bytes_re)) << metrics->body;
    EXPECT_GE(std::stoull(m[1]), 100004u);
    EXPECT_NE(metrics->body.find("tunnel_forward_connected{destination="), std::string::npos);
    auto status = http_get(sp, "/status");
    ASSERT_TRUE(status);
    auto j = nlohmann::json::parse(status->body);
    EXPECT_TRUE(j["connected"].get<bool>());
    EXPECT_EQ(j["connects"].get<int>(), 1);
    EXPECT_EQ(http_get(sp, "/nope")->status, 404);

    const auto t0 = steady::now();
    fp->child->signal(SIGTERM);
    auto code = fp->child->wait(3s);
    ASSERT_TRUE(code) << "still running 3 s after SIGTERM";
    EXPECT_EQ(*code, 0) << fp->err();
    EXPECT_LT(steady::now() - t0, 2s);
    EXPECT_FALSE(port_accepts(lp));
}

// Off loopback the status endpoints need a bearer token (finding 9, for
// `tunnel forward --status-addr` as for the relay's admin listener).
TEST_F(ForwardCli, StatusAddrOffLoopbackNeedsAToken) {
    const uint16_t lp = port(), sp = port();
    auto refused = run_tunnel([&] {
        auto a = fixture_flags(*sshd);
        a.insert(a.begin(), "forward");
        a.insert(a.end(), {"-L", fmt::format("{}:127.0.0.1:{}", lp, echo->port()), "--status-addr",
                           fmt::format("0.0.0.0:{}", sp), "root@127.0.0.1"});
        return a;
    }());
    EXPECT_NE(refused.exit_code, 0) << refused.describe();
    EXPECT_FALSE(refused.timed_out);
    EXPECT_NE(refused.err.find("--status-token-file"), std::string::npos) << refused.err;

    auto dir = temp_dir::create("fwd-status-token");
    ASSERT_TRUE(dir);
    const std::string token = "status-token-0123456789abcdef";
    ASSERT_TRUE(write_text_file(dir->file("token"), token + "\n", 0600));
    auto fp =
        start_forward(fixture_flags(*sshd),
                      {"-L", fmt::format("{}:127.0.0.1:{}", lp, echo->port()), "--status-addr",
                       fmt::format("0.0.0.0:{}", sp), "--status-token-file", dir->file("token")});
    ASSERT_TRUE(fp) << fp.error().message;
    ASSERT_TRUE(wait_round_trip("127.0.0.1", lp, 10s)) << fp->err();
    auto status_of = [&](const std::string& path, const std::string& host,
                         const std::string& auth) {
        int fd = connect_tcp("127.0.0.1", sp);
        if (fd < 0) return -1;
        auto got =
            exchange(fd,
                     fmt::format("GET {} HTTP/1.1\r\nHost: {}\r\n{}\r\n", path, host,
                                 auth.empty() ? "" : "Authorization: Bearer " + auth + "\r\n"),
                     3000);
        ::close(fd);
        return got && got->rfind("HTTP/1.1 ", 0) == 0 ? std::atoi(got->c_str() + 9) : -1;
    };
    EXPECT_EQ(status_of("/metrics", "127.0.0.1", ""), 401);
    EXPECT_EQ(status_of("/metrics", "127.0.0.1", "wrong-token-0123456789"), 401);
    EXPECT_EQ(status_of("/metrics", "127.0.0.1", token), 200);
    EXPECT_EQ(status_of("/status", "127.0.0.1", token), 200);
    EXPECT_EQ(status_of("/healthz", "127.0.0.1", ""), 200);
    EXPECT_EQ(status_of("/metrics", "evil.example", token), 421);
    EXPECT_EQ(fp->err().find(token), std::string::npos);
}

TEST_F(ForwardCli, HealthzIs503WhileTheServerIsDown) {
    const uint16_t lp = port(), sp = port();
    auto fp =
        start_forward(fixture_flags(*sshd), {"-L", fmt::format("{}:127.0.0.1:{}", lp, echo->port()),
                                             "--status-addr", fmt::format("127.0.0.1:{}", sp)});
    ASSERT_TRUE(fp);
    ASSERT_TRUE(wait_round_trip("127.0.0.1", lp, 10s)) << fp->err();
    sshd->stop();
    EXPECT_TRUE(eventually(
        [&] {
            auto h = http_get(sp, "/healthz");
            return h && h->status == 503;
        },
        5s));
    EXPECT_TRUE(port_accepts(lp)) << "the -L listener keeps listening during the outage";
}

TEST_F(ForwardCli, PortAlreadyInUseIsAClearErrorNamingTheAddress) {
    // The echo server holds its port: ask to listen on it.
    auto r = run_tunnel([&] {
        auto a = fixture_flags(*sshd);
        a.insert(a.begin(), "forward");
        a.insert(a.end(),
                 {"-L", fmt::format("127.0.0.1:{}:127.0.0.1:22", echo->port()), "root@127.0.0.1"});
        return a;
    }());
    EXPECT_EQ(r.exit_code, 255) << r.describe();
    EXPECT_NE(r.err.find(fmt::format("cannot listen on 127.0.0.1:{}", echo->port())),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("Address already in use"), std::string::npos) << r.err;
}

TEST_F(ForwardCli, BadFlagsExitTwoWithOneLine) {
    auto base = fixture_flags(*sshd);
    base.insert(base.begin(), "forward");
    for (const auto& bad : std::vector<std::vector<std::string>>{
             {"-L", "8080"},
             {"-L", "x:1:2:3:4"},
             {"-L", "70000:h:1"},
             {"-L", "1:h:0"},
             {"-D", "abc"},
             {"-R", "/tmp/sock:127.0.0.1:1"},
             {"--keepalive", "5x", "-L", "8080:h:1"},
             {},
         }) {
        auto args = base;
        args.insert(args.end(), bad.begin(), bad.end());
        args.push_back("root@127.0.0.1");
        auto r = run_tunnel(args);
        EXPECT_EQ(r.exit_code, 2) << fmt::format("{}", fmt::join(bad, " ")) << ": " << r.describe();
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
        EXPECT_EQ(r.err.rfind("tunnel", 0), 0u) << r.err;
    }
}

TEST_F(ForwardCli, UnknownTargetHostIsLoggedAndOtherForwardsKeepWorking) {
    const uint16_t bad_lp = port(), good_lp = port();
    auto fp = start_forward(fixture_flags(*sshd),
                            {"-L", fmt::format("{}:no-such-host.invalid:80", bad_lp), "-L",
                             fmt::format("{}:127.0.0.1:{}", good_lp, echo->port())});
    ASSERT_TRUE(fp);
    ASSERT_TRUE(wait_round_trip("127.0.0.1", good_lp, 10s)) << fp->err();
    int fd = connect_tcp("127.0.0.1", bad_lp);
    ASSERT_GE(fd, 0);
    auto got = exchange(fd, "hello", 10000);
    ::close(fd);
    ASSERT_TRUE(got) << got.error().message;
    EXPECT_TRUE(got->empty()) << "closed without data";
    EXPECT_TRUE(eventually(
        [&] { return fp->err().find("cannot reach no-such-host.invalid:80") != std::string::npos; },
        5s))
        << fp->err();
    EXPECT_TRUE(round_trip("127.0.0.1", good_lp));
    EXPECT_TRUE(fp->child->running());
}

TEST_F(ForwardCli, ExitOnForwardFailureWhenTheServerRefusesRemotePort) {
    // The echo server already listens on its port on this (the server's) host.
    auto args = fixture_flags(*sshd);
    args.insert(args.begin(), "forward");
    args.insert(args.end(), {"--exit-on-forward-failure", "-R",
                             fmt::format("{}:127.0.0.1:1", echo->port()), "root@127.0.0.1"});
    auto r = run_tunnel(args);
    EXPECT_NE(r.exit_code, 0) << r.describe();
    EXPECT_FALSE(r.timed_out);
    EXPECT_NE(r.err.find("refused to listen on localhost:" + std::to_string(echo->port())),
              std::string::npos)
        << r.err;
}

TEST_F(ForwardCli, UnixSocketListenerForLocalForward) {
    auto dir = temp_dir::create();
    ASSERT_TRUE(dir);
    const auto path = dir->file("fwd.sock");
    auto fp = start_forward(fixture_flags(*sshd),
                            {"-L", fmt::format("{}:127.0.0.1:{}", path, echo->port())});
    ASSERT_TRUE(fp);
    ASSERT_TRUE(eventually(
        [&] {
            auto r = run({"python3", "-c",
                          "import socket,sys; s=socket.socket(socket.AF_UNIX); "
                          "s.connect(sys.argv[1]); s.sendall(b'unix!');"
                          " s.shutdown(1); print(s.recv(100).decode())",
                          path});
            return r.ok() && r.out == "unix!\n";
        },
        10s))
        << fp->err();
}

// A Unix-socket echo server (python3, in the background) at `path`.
core::result<child_process> unix_echo(const std::string& path) {
    auto c =
        spawn({"python3", "-c",
               "import socket,sys,threading\n"
               "s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8)\n"
               "def serve(c):\n"
               "    while True:\n"
               "        d=c.recv(65536)\n"
               "        if not d: break\n"
               "        c.sendall(d)\n"
               "    c.shutdown(socket.SHUT_WR)\n"
               "while True:\n"
               "    c,_=s.accept(); threading.Thread(target=serve,args=(c,),daemon=True).start()\n",
               path});
    if (!c) return c;
    struct stat st {};
    for (int i = 0; i < 500 && ::stat(path.c_str(), &st) != 0; ++i)
        std::this_thread::sleep_for(10ms);
    return c;
}

TEST_F(ForwardCli, UnixSocketTargetsOnBothSides) {
    auto dir = temp_dir::create();
    ASSERT_TRUE(dir);
    const auto path = dir->file("echo.sock");
    auto server = unix_echo(path);
    ASSERT_TRUE(server) << server.error().message;
    const uint16_t lp = port(), rp = port();
    // -L to a socket on the server (direct-streamlocal), -R to a socket here.
    auto fp = start_forward(fixture_flags(*sshd), {"-L", fmt::format("{}:{}", lp, path), "-R",
                                                   fmt::format("{}:{}", rp, path)});
    ASSERT_TRUE(fp);
    ASSERT_TRUE(wait_round_trip("127.0.0.1", lp, 10s)) << fp->err();
    ASSERT_TRUE(wait_round_trip("127.0.0.1", rp, 10s)) << fp->err();
    const auto data = random_bytes(4u << 20, 11);
    for (uint16_t p : {lp, rp}) {
        int fd = connect_tcp("127.0.0.1", p);
        ASSERT_GE(fd, 0);
        auto got = exchange(fd, data, 10000);
        ::close(fd);
        ASSERT_TRUE(got) << got.error().message;
        EXPECT_EQ(sha256_hex(*got), sha256_hex(data)) << p;
    }
}

}  // namespace
}  // namespace tunnel::test::fwd
