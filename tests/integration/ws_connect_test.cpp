// `tunnel ws-connect` as ssh's ProxyCommand through Debian's websockify (a
// real WebSocket server) in front of a real sshd: plain ws, wss with
// --ca-file, untrusted certificates, a refused token, a stalled server.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include <gtest/gtest.h>

#include <fmt/format.h>

#include "support/net.hpp"
#include "support/sshd_fixture.hpp"
#include "support/tunnel_cli.hpp"
#include "support/websockify_fixture.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;

class WsConnect : public ::testing::Test {
  protected:
    void SetUp() override {
        auto s = sshd_fixture::start();
        ASSERT_TRUE(s) << s.error().message;
        sshd.emplace(std::move(*s));
        auto h = temp_dir::create("tunnel-wsc-home");
        ASSERT_TRUE(h);
        home.emplace(std::move(*h));
    }

    std::optional<websockify_fixture> start_websockify(bool tls = false,
                                                       std::vector<std::string> extra = {}) {
        websockify_options o;
        o.target_port = sshd->port();
        o.tls = tls;
        o.extra_args = std::move(extra);
        auto w = websockify_fixture::start(o);
        EXPECT_TRUE(w) << w.error().message;
        if (!w) return std::nullopt;
        return std::move(*w);
    }

    // ssh ... -o ProxyCommand='tunnel ws-connect ARGS' root@127.0.0.1 CMD
    run_result ssh_through(const std::string& proxy_args, std::vector<std::string> command) {
        std::vector<std::string> argv{
            "ssh",
            "-F",
            "/dev/null",
            "-p",
            std::to_string(sshd->port()),
            "-i",
            sshd->client_key_path(),
            "-o",
            "UserKnownHostsFile=" + sshd->known_hosts_path(),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            fmt::format("ProxyCommand={} ws-connect {}", tunnel_binary(), proxy_args),
            "root@127.0.0.1"};
        argv.insert(argv.end(), command.begin(), command.end());
        run_options o;
        o.env.set.push_back({"HOME", home->path()});
        o.timeout = 30s;
        return run(argv, o);
    }

    cli_options cli() const {
        cli_options o;
        o.home = home->path();
        return o;
    }

    std::optional<sshd_fixture> sshd;
    std::optional<temp_dir> home;
};

TEST_F(WsConnect, OpenSshRunsACommandThroughWebsockify) {
    auto ws = start_websockify();
    ASSERT_TRUE(ws);
    auto r = ssh_through(ws->url(), {"echo", "over-websocket", "&&", "head", "-c", "3000000",
                                     "/dev/zero", "|", "wc", "-c"});
    ASSERT_TRUE(r.ok()) << r.describe() << "\nwebsockify: " << ws->log();
    EXPECT_NE(r.out.find("over-websocket"), std::string::npos);
    EXPECT_NE(r.out.find("3000000"), std::string::npos) << r.out;
}

TEST_F(WsConnect, WssWithCaFileVerifiesTheCertificate) {
    auto ws = start_websockify(true);
    ASSERT_TRUE(ws);
    auto r = ssh_through(fmt::format("{} --ca-file {}", ws->url(), ws->cert_path()),
                         {"echo", "over-tls"});
    ASSERT_TRUE(r.ok()) << r.describe() << "\nwebsockify: " << ws->log();
    EXPECT_NE(r.out.find("over-tls"), std::string::npos);
}

TEST_F(WsConnect, UntrustedCertificateIsRefusedWithTheFix) {
    auto ws = start_websockify(true);
    ASSERT_TRUE(ws);
    auto r = run_tunnel({"ws-connect", ws->url()}, cli());
    EXPECT_EQ(r.exit_code, 255) << r.describe();
    EXPECT_NE(r.err.find("not trusted"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("--ca-file"), std::string::npos) << r.err;

    // A certificate for another name is refused too, even when trusted.
    auto wrong = run_tunnel({"ws-connect", fmt::format("wss://localhost:{}/", ws->port()),
                             "--ca-file", ws->cert_path()},
                            cli());
    EXPECT_EQ(wrong.exit_code, 255) << wrong.describe();
    EXPECT_NE(wrong.err.find("not trusted"), std::string::npos) << wrong.err;

    // --insecure connects anyway, and says so.
    auto insecure = ssh_through(fmt::format("{} --insecure", ws->url()), {"echo", "unchecked"});
    ASSERT_TRUE(insecure.ok()) << insecure.describe();
    EXPECT_NE(insecure.out.find("unchecked"), std::string::npos);
    EXPECT_NE(insecure.err.find("warning: --insecure"), std::string::npos) << insecure.err;
}

TEST_F(WsConnect, RefusalsAreReportedAsAuthErrors) {
    // websockify's BasicHTTPAuth answers 401 without credentials and 403 to a Bearer token.
    auto ws =
        start_websockify(false, {"--auth-plugin", "BasicHTTPAuth", "--auth-source", "user:pass"});
    ASSERT_TRUE(ws);
    auto none = run_tunnel({"ws-connect", ws->url()}, cli());
    EXPECT_EQ(none.exit_code, 255) << none.describe();
    EXPECT_NE(none.err.find("refused the token (HTTP 401"), std::string::npos) << none.err;

    ASSERT_TRUE(write_text_file(home->file("token"), "not.a-valid.token\n", 0600));
    auto r = run_tunnel({"ws-connect", ws->url(), "--token-file", home->file("token")}, cli());
    EXPECT_EQ(r.exit_code, 255) << r.describe();
    EXPECT_NE(r.err.find("refused the tunnel (HTTP 403"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("not.a-valid.token"), std::string::npos)
        << "the token must never be printed";
}

TEST_F(WsConnect, UnreachableRelayAndBadInputFailClearly) {
    auto port = unused_port();
    ASSERT_TRUE(port);
    auto refused =
        run_tunnel({"ws-connect", fmt::format("ws://127.0.0.1:{}/v1/tunnel", *port)}, cli());
    EXPECT_EQ(refused.exit_code, 255) << refused.describe();
    EXPECT_NE(refused.err.find("cannot connect to ws://127.0.0.1"), std::string::npos)
        << refused.err;

    auto bad_url = run_tunnel({"ws-connect", "https://relay/v1/tunnel"}, cli());
    EXPECT_EQ(bad_url.exit_code, 2) << bad_url.describe();
    EXPECT_NE(bad_url.err.find("use wss://"), std::string::npos) << bad_url.err;

    auto no_token = run_tunnel(
        {"ws-connect", "ws://127.0.0.1:1/", "--token-file", home->file("missing")}, cli());
    EXPECT_NE(no_token.exit_code, 0);
    EXPECT_NE(no_token.err.find("token file"), std::string::npos) << no_token.err;
}

TEST_F(WsConnect, StalledServerIsDetectedByPings) {
    auto ws = start_websockify();
    ASSERT_TRUE(ws);
    // stdin is a FIFO this test holds open, so only the ping deadline can end the bridge.
    const auto fifo = home->file("stdin");
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    const int keep_open = ::open(fifo.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(keep_open, 0);
    const std::string script = fmt::format("exec {} ws-connect --idle-timeout 2s {} < {}",
                                           tunnel_binary(), ws->url(), fifo);
    spawn_options so;
    so.stdout_path = home->file("out");
    so.stderr_path = home->file("err");
    auto child = spawn({"sh", "-c", script}, so);
    ASSERT_TRUE(child) << child.error().message;
    // Wait until sshd's banner came through the WebSocket, then freeze websockify.
    const auto until = std::chrono::steady_clock::now() + 15s;
    while (read_text_file(home->file("out")).value_or("").find("SSH-2.0") == std::string::npos &&
           std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(20ms);  // polling a condition, with a deadline
    ASSERT_NE(read_text_file(home->file("out")).value_or("").find("SSH-2.0"), std::string::npos)
        << read_text_file(home->file("err")).value_or("");
    ws->pause();
    const auto code = child->wait(20s);
    ws->resume();
    ::close(keep_open);
    ASSERT_TRUE(code) << "ws-connect did not notice the stalled server";
    const auto err = read_text_file(home->file("err")).value_or("");
    EXPECT_EQ(*code, 255) << err;
    EXPECT_NE(err.find("stopped answering"), std::string::npos) << err;
}

}  // namespace
}  // namespace tunnel::test
