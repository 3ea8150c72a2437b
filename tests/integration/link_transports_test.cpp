// The link manager's transports against real peers on loopback: `command`
// through socat (ProxyCommand), `http_connect` through Debian's tinyproxy,
// and a link over a jump host (ProxyJump through the same sshd).
#include <gtest/gtest.h>

#include "forward_test_support.hpp"
#include "link_test_support.hpp"
#include "support/net.hpp"
#include "support/process.hpp"

namespace tunnel::test::links {
namespace {

using fwd::wait_round_trip;

// tinyproxy in the foreground on a loopback port, logging to its dir;
// `basic_auth` ("user pass") makes it want Proxy-Authorization: Basic.
struct tinyproxy_fixture {
    explicit tinyproxy_fixture(temp_dir d) : dir(std::move(d)) {}
    temp_dir dir;
    uint16_t port = 0;
    std::optional<child_process> child;

    static core::result<std::unique_ptr<tinyproxy_fixture>> start(std::string basic_auth = {}) {
        auto d = temp_dir::create("tunnel-tinyproxy");
        if (!d) return tl::unexpected(d.error());
        auto f = std::make_unique<tinyproxy_fixture>(std::move(*d));
        for (int attempt = 0; attempt < 5; ++attempt) {
            auto p = unused_port();
            if (!p) return tl::unexpected(p.error());
            f->port = *p;
            const auto conf = f->dir.file("tinyproxy.conf");
            // No ConnectPort line: CONNECT to any port (sshd's is not 443).
            (void)write_text_file(
                conf,
                fmt::format("Port {}\nListen 127.0.0.1\nTimeout 600\n"
                            "Allow 127.0.0.1\nMaxClients 20\n"
                            "LogLevel Info\nLogFile \"{}\"\n{}",
                            f->port, f->dir.file("tinyproxy.log"),
                            basic_auth.empty() ? std::string() : "BasicAuth " + basic_auth + "\n"));
            spawn_options so;
            so.stdout_path = f->dir.file("stdout");
            so.stderr_path = f->dir.file("stdout");
            auto c = spawn({"/usr/bin/tinyproxy", "-d", "-c", conf}, so);
            if (!c) return tl::unexpected(c.error());
            f->child.emplace(std::move(*c));
            if (wait_for_port(f->port, 5s)) return f;
            f->child->terminate();
            f->child.reset();
        }
        return core::fail(core::errc::connection_failed, "tinyproxy did not start");
    }
    std::string log() const { return read_text_file(dir.file("tinyproxy.log")).value_or(""); }
    ~tinyproxy_fixture() {
        if (child) child->terminate();
    }
};

class LinkTransports : public ::testing::Test {
  protected:
    void SetUp() override {
        auto s = sshd_fixture::start();
        ASSERT_TRUE(s) << s.error().message;
        sshd.emplace(std::move(*s));
        auto e = echo_server::start();
        ASSERT_TRUE(e) << e.error().message;
        echo = std::move(*e);
    }
    std::string yaml(std::string_view transports) {
        return fmt::format(
            "links:\n"
            "  db:\n"
            "    target: root@127.0.0.1\n"
            "    options: {}\n"
            "    transports: {}\n"
            "    forwards: ['-L 127.0.0.1:{}:127.0.0.1:{}']\n"
            "    keepalive: 1s\n",
            fixture_options(*sshd), transports, local_port(), echo->port());
    }
    std::optional<sshd_fixture> sshd;
    std::unique_ptr<echo_server> echo;
};

TEST_F(LinkTransports, CommandTransportRunsSocatAsProxyCommand) {
    auto m =
        running_manager::start(yaml("[{type: command, command: '/usr/bin/socat - TCP:%h:%p'}]"));
    ASSERT_TRUE(m) << m.error().message;
    auto& rm = **m;
    ASSERT_TRUE(rm.wait_active("db", 0, 10s)) << rm.status("db").dump(2);
    EXPECT_TRUE(wait_round_trip("127.0.0.1", rm.local_port("db", 0), 5s));
    auto st = rm.status("db");
    EXPECT_EQ(st["transport"]["type"], "command");
    ASSERT_TRUE(fwd::eventually([&] { return rm.status("db")["rtt_ms"].is_number(); }, 5s));
    EXPECT_GT(rm.status("db")["rtt_ms"].get<double>(), 0.0);
    EXPECT_GT(rm.status("db")["bytes"]["in"].get<uint64_t>(), 0u);
}

TEST_F(LinkTransports, CommandThatFailsIsReportedAndTheNextTransportCarries) {
    auto m =
        running_manager::start(yaml("[{type: command, command: \"sh -c 'exit 3'\"}, {type: tcp}]"));
    ASSERT_TRUE(m) << m.error().message;
    auto& rm = **m;
    ASSERT_TRUE(rm.wait_active("db", 1, 10s)) << rm.status("db").dump(2);
    EXPECT_TRUE(wait_round_trip("127.0.0.1", rm.local_port("db", 0), 5s));
    ASSERT_TRUE(fwd::eventually(
        [&] { return rm.status("db")["transports"][0].contains("last_error"); }, 5s));
    auto err = rm.status("db")["transports"][0]["last_error"].get<std::string>();
    EXPECT_NE(err.find("exited with status 3"), std::string::npos) << err;
    EXPECT_FALSE(rm.events_of("connect_failed").empty());
}

TEST_F(LinkTransports, HttpConnectThroughTinyproxy) {
    auto tp = tinyproxy_fixture::start();
    ASSERT_TRUE(tp) << tp.error().message;
    auto m = running_manager::start(
        yaml(fmt::format("[{{type: http_connect, proxy: '127.0.0.1:{}'}}]", (*tp)->port)));
    ASSERT_TRUE(m) << m.error().message;
    auto& rm = **m;
    ASSERT_TRUE(rm.wait_active("db", 0, 10s)) << rm.status("db").dump(2) << (*tp)->log();
    EXPECT_TRUE(wait_round_trip("127.0.0.1", rm.local_port("db", 0), 5s));
    EXPECT_EQ(rm.status("db")["transport"]["type"], "http_connect");
    EXPECT_NE((*tp)->log().find(fmt::format("CONNECT 127.0.0.1:{}", sshd->port())),
              std::string::npos)
        << (*tp)->log();
}

TEST_F(LinkTransports, HttpConnectRefusedByTheProxyIsReported) {
    auto tp = tinyproxy_fixture::start();
    ASSERT_TRUE(tp) << tp.error().message;
    auto closed = unused_port();
    ASSERT_TRUE(closed);
    // The target's port is closed: tinyproxy answers 500.
    auto text = yaml(fmt::format("[{{type: http_connect, proxy: '127.0.0.1:{}'}}]", (*tp)->port));
    text.replace(text.find(fmt::format("Port: {}", sshd->port())),
                 fmt::format("Port: {}", sshd->port()).size(), fmt::format("Port: {}", *closed));
    auto m = running_manager::start(text);
    ASSERT_TRUE(m) << m.error().message;
    auto& rm = **m;
    ASSERT_TRUE(fwd::eventually(
        [&] { return rm.status("db")["transports"][0].contains("last_error"); }, 10s));
    auto err = rm.status("db")["transports"][0]["last_error"].get<std::string>();
    EXPECT_NE(err.find("refused CONNECT"), std::string::npos) << err;
    EXPECT_EQ(rm.status("db")["state"], "down");
}

// What a manager shows of itself (status, events): the proxy password must not be in it.
std::string shown(running_manager& rm) {
    std::string all = rm.status("db").dump();
    for (const auto& e : rm.events()) all += e.dump();
    return all;
}

TEST_F(LinkTransports, HttpConnectSendsBasicCredentialsFromAFile) {
    const std::string password = "pw-" + std::to_string(::getpid()) + "-Xq7";
    auto tp = tinyproxy_fixture::start("alice " + password);
    ASSERT_TRUE(tp) << tp.error().message;
    const auto creds = (*tp)->dir.file("proxy-creds");
    ASSERT_TRUE(write_text_file(creds, "alice:" + password + "\n"));
    auto m =
        running_manager::start(yaml(fmt::format("[{{type: http_connect, proxy: '127.0.0.1:{}', "
                                                "proxy_credentials_file: '{}'}}]",
                                                (*tp)->port, creds)));
    ASSERT_TRUE(m) << m.error().message;
    auto& rm = **m;
    ASSERT_TRUE(rm.wait_active("db", 0, 10s)) << rm.status("db").dump(2) << (*tp)->log();
    EXPECT_TRUE(wait_round_trip("127.0.0.1", rm.local_port("db", 0), 5s));
    EXPECT_EQ(shown(rm).find(password), std::string::npos);
}

TEST_F(LinkTransports, HttpConnectWithoutCredentialsNamesWhatIsMissing) {
    auto tp = tinyproxy_fixture::start("alice secret-pw");
    ASSERT_TRUE(tp) << tp.error().message;
    auto m = running_manager::start(
        yaml(fmt::format("[{{type: http_connect, proxy: '127.0.0.1:{}'}}]", (*tp)->port)));
    ASSERT_TRUE(m) << m.error().message;
    auto& rm = **m;
    ASSERT_TRUE(fwd::eventually(
        [&] { return rm.status("db")["transports"][0].contains("last_error"); }, 10s));
    auto err = rm.status("db")["transports"][0]["last_error"].get<std::string>();
    EXPECT_NE(err.find("407"), std::string::npos) << err;
    EXPECT_NE(err.find("set proxy_credentials_file or proxy_credentials_env"), std::string::npos)
        << err;
    EXPECT_EQ(rm.status("db")["state"], "down");
}

TEST_F(LinkTransports, HttpConnectWithWrongCredentialsNamesTheirSourceNotThem) {
    auto tp = tinyproxy_fixture::start("alice right-pw");
    ASSERT_TRUE(tp) << tp.error().message;
    ::setenv("TUNNEL_TEST_PROXY_CREDENTIALS", "alice:Wrong-pw-9", 1);
    auto m = running_manager::start(
        yaml(fmt::format("[{{type: http_connect, proxy: '127.0.0.1:{}', "
                         "proxy_credentials_env: TUNNEL_TEST_PROXY_CREDENTIALS}}, {{type: tcp}}]",
                         (*tp)->port)));
    ASSERT_TRUE(m) << m.error().message;
    auto& rm = **m;
    // Refused by the proxy, so the next transport carries the link.
    ASSERT_TRUE(rm.wait_active("db", 1, 10s)) << rm.status("db").dump(2);
    ASSERT_TRUE(fwd::eventually(
        [&] { return rm.status("db")["transports"][0].contains("last_error"); }, 5s));
    auto err = rm.status("db")["transports"][0]["last_error"].get<std::string>();
    EXPECT_NE(err.find("refused the user:password from environment variable "
                       "TUNNEL_TEST_PROXY_CREDENTIALS"),
              std::string::npos)
        << err;
    EXPECT_EQ(shown(rm).find("Wrong-pw-9"), std::string::npos);
    ::unsetenv("TUNNEL_TEST_PROXY_CREDENTIALS");
}

TEST_F(LinkTransports, JumpTransportGoesThroughABastion) {
    // The fixture is its own bastion: jump to root@127.0.0.1:PORT, then on to it.
    auto text = fmt::format(
        "links:\n"
        "  db:\n"
        "    target: root@127.0.0.1\n"
        "    options: {}\n"
        "    transports: [{{type: jump, via: 'root@127.0.0.1:{}'}}]\n"
        "    forwards: ['-L 127.0.0.1:{}:127.0.0.1:{}']\n"
        "    keepalive: 1s\n",
        fixture_options(*sshd), sshd->port(), local_port(), echo->port());
    auto m = running_manager::start(text);
    ASSERT_TRUE(m) << m.error().message;
    auto& rm = **m;
    ASSERT_TRUE(rm.wait_active("db", 0, 10s)) << rm.status("db").dump(2);
    EXPECT_TRUE(wait_round_trip("127.0.0.1", rm.local_port("db", 0), 5s));
    EXPECT_EQ(rm.status("db")["transport"]["type"], "jump");
}

}  // namespace
}  // namespace tunnel::test::links
