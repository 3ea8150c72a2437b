// `tunnel connect` up to the relay's SSH layer, with Debian's websockify in
// front of a real sshd standing in for the relay's WebSocket side: the relay
// host key is recorded on first use, a changed or unpinned key is refused
// naming both fingerprints, and bad input fails before any connection.
// (Publishing through the real relay: relay_connect_test.cpp.)
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "support/process.hpp"
#include "support/sshd_fixture.hpp"
#include "support/tunnel_cli.hpp"
#include "support/websockify_fixture.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;

std::string fingerprint_of(const std::string& pubkey_line, const temp_dir& dir) {
    const auto path = dir.file("fp.pub");
    if (!write_text_file(path, pubkey_line + "\n")) return {};
    auto r = run({"ssh-keygen", "-l", "-E", "sha256", "-f", path});
    auto at = r.out.find("SHA256:");
    return at == std::string::npos ? std::string{} : r.out.substr(at, r.out.find(' ', at) - at);
}

class ConnectCli : public ::testing::Test {
  protected:
    void SetUp() override {
        auto s = sshd_fixture::start();
        ASSERT_TRUE(s) << s.error().message;
        sshd.emplace(std::move(*s));
        websockify_options wo;
        wo.target_port = sshd->port();
        auto w = websockify_fixture::start(wo);
        ASSERT_TRUE(w) << w.error().message;
        ws.emplace(std::move(*w));
        auto h = temp_dir::create("tunnel-connect-home");
        ASSERT_TRUE(h);
        home.emplace(std::move(*h));
        ASSERT_TRUE(
            write_text_file(home->file("secret"), "0123456789abcdef0123456789abcdef\n", 0600));
        auto t = run_tunnel({"token", "--secret-file", home->file("secret"), "--tenant", "acme",
                             "--allow", "llm", "--ttl", "1h"},
                            cli());
        ASSERT_TRUE(t.ok()) << t.describe();
        ASSERT_TRUE(write_text_file(home->file("token"), t.out, 0600));
        known_hosts = home->file(".config/tunnel/relay_known_hosts");
    }
    cli_options cli() const {
        cli_options o;
        o.home = home->path();
        return o;
    }
    run_result connect(std::vector<std::string> extra = {}) {
        std::vector<std::string> args{"connect",           ws->url(),  "--token-file",
                                      home->file("token"), "--expose", "llm=127.0.0.1:9",
                                      "--no-reconnect"};
        args.insert(args.end(), extra.begin(), extra.end());
        return run_tunnel(args, cli());
    }

    std::optional<sshd_fixture> sshd;
    std::optional<websockify_fixture> ws;
    std::optional<temp_dir> home;
    std::string known_hosts;
};

TEST_F(ConnectCli, FirstUseRecordsTheRelayHostKeyUnderTheUrlsHostAndPort) {
    // sshd refuses SSH auth `none` (the relay accepts it): the run fails after the host key check.
    auto r = connect();
    EXPECT_EQ(r.exit_code, 255) << r.describe();
    EXPECT_NE(r.err.find("permission denied for acme@"), std::string::npos) << r.err;
    auto recorded = read_text_file(known_hosts);
    ASSERT_TRUE(recorded) << r.err;
    EXPECT_NE(recorded->find(fmt::format("[127.0.0.1]:{} {}", ws->port(), sshd->host_pubkey())),
              std::string::npos)
        << *recorded;
    // Trust on first use is said out loud, with the fingerprint to compare.
    const auto fp = fingerprint_of(sshd->host_pubkey(), *home);
    ASSERT_FALSE(fp.empty());
    EXPECT_NE(r.err.find(fmt::format("first connection to [127.0.0.1]:{}: its SSH host key is {}",
                                     ws->port(), fp)),
              std::string::npos)
        << r.err;

    // The second run finds it and gets as far again.
    auto again = connect();
    EXPECT_NE(again.err.find("permission denied"), std::string::npos) << again.err;
    EXPECT_EQ(again.err.find("first connection"), std::string::npos) << again.err;
    EXPECT_EQ(read_text_file(known_hosts).value_or(""), *recorded);
}

TEST_F(ConnectCli, ChangedRelayHostKeyIsRefusedWithBothFingerprints) {
    auto keygen = run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", home->file("old")});
    ASSERT_TRUE(keygen.ok()) << keygen.describe();
    auto old_pub = read_text_file(home->file("old.pub"));
    ASSERT_TRUE(old_pub);
    ASSERT_TRUE(run({"mkdir", "-p", home->file(".config/tunnel")}).ok());
    ASSERT_TRUE(
        write_text_file(known_hosts, fmt::format("[127.0.0.1]:{} {}", ws->port(), *old_pub)));
    auto r = connect();
    EXPECT_EQ(r.exit_code, 255) << r.describe();
    EXPECT_NE(r.err.find("HOST KEY CHANGED"), std::string::npos) << r.err;
    const auto old_fp = fingerprint_of(old_pub->substr(0, old_pub->rfind(' ')), *home);
    const auto new_fp = fingerprint_of(sshd->host_pubkey(), *home);
    ASSERT_FALSE(old_fp.empty());
    EXPECT_NE(r.err.find(old_fp), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(new_fp), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("ssh-keygen -R"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("--relay-host-key"), std::string::npos) << r.err;
}

TEST_F(ConnectCli, PinnedRelayHostKeyMustMatch) {
    const auto real_fp = fingerprint_of(sshd->host_pubkey(), *home);
    auto wrong =
        connect({"--relay-host-key", "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"});
    EXPECT_EQ(wrong.exit_code, 255) << wrong.describe();
    EXPECT_NE(wrong.err.find("HOST KEY MISMATCH"), std::string::npos) << wrong.err;
    EXPECT_NE(wrong.err.find(real_fp), std::string::npos) << wrong.err;

    auto right = connect({"--relay-host-key", real_fp});
    EXPECT_NE(right.err.find("permission denied"), std::string::npos)
        << right.err;  // past the key check
}

TEST_F(ConnectCli, BadInputFailsBeforeConnecting) {
    auto no_expose = run_tunnel({"connect", ws->url(), "--token-file", home->file("token")}, cli());
    EXPECT_EQ(no_expose.exit_code, 2) << no_expose.describe();
    auto bad_expose = connect({"--expose", "Bad_Name=127.0.0.1:1"});
    EXPECT_EQ(bad_expose.exit_code, 2) << bad_expose.describe();
    EXPECT_NE(bad_expose.err.find("DNS label"), std::string::npos) << bad_expose.err;
    ASSERT_TRUE(write_text_file(home->file("garbage"), "not-a-jwt\n", 0600));
    auto bad_token = run_tunnel(
        {"connect", ws->url(), "--token-file", home->file("garbage"), "--expose", "a=1"}, cli());
    EXPECT_EQ(bad_token.exit_code, 2) << bad_token.describe();
    EXPECT_NE(bad_token.err.find("not a JWT"), std::string::npos) << bad_token.err;
    EXPECT_EQ(bad_token.err.find("not-a-jwt"), std::string::npos) << "never echo the token";
    auto bad_pin = connect({"--relay-host-key", "deadbeef"});
    EXPECT_EQ(bad_pin.exit_code, 2) << bad_pin.describe();
}

}  // namespace
}  // namespace tunnel::test
