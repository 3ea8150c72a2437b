// A tunnel outlives its token (issue 12, "Token lifecycle"): `tunnel connect`
// fetches a fresh token before the old one expires (--token-command) or
// picks up a token file that was rewritten, and attaches again with it at a
// quiet moment; the relay's lease gives the names back, so callers never see
// the change. Tokens here live 4 s, so each test crosses several expiries.
#include <sys/stat.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/eventually.hpp"
#include "support/relay_fixture.hpp"
#include "support/tcp_servers.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

std::string get(const std::string& path) {
    return fmt::format("GET /t/acme/web{} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n",
                       path);
}

class RelayTokenRenewal : public ::testing::Test {
  protected:
    void SetUp() override {
        relay_options o;
        o.extra_yaml =
            "limits:\n  tenant_rps: 1000\n  route_rps: 1000\n  route_burst: 1000\n"
            "leases: {grace: 30s}\nqueue: {max_wait: 20s}\n";
        auto r = relay_fixture::start(std::move(o));
        ASSERT_TRUE(r) << r.error().message;
        relay.emplace(std::move(*r));
        auto origin_or = http_origin::start("ok");
        ASSERT_TRUE(origin_or) << origin_or.error().message;
        origin = std::move(*origin_or);
    }

    std::string mint_command() const {
        return fmt::format("{} token --secret-file {} --tenant acme --allow web --ttl 4s",
                           tunnel_binary(), relay->secret_path());
    }

    // Requests every 100 ms for `how_long`; the statuses that were not 200.
    // Known gap (docs/relay-client.md): a request whose channel the relay is
    // opening, or whose answer is on its way, in the instant the client drops
    // its old session gets 502 (origin_unreachable / origin_closed), and one
    // in the instant the relay swaps the old tunnel for the new one can get
    // 503 tunnel_offline; these are counted in `cut`, anything else is `bad`.
    std::vector<std::string> load(std::chrono::milliseconds how_long, int& answered, int& cut) {
        std::vector<std::string> bad;
        answered = 0;
        cut = 0;
        const auto until = steady::now() + how_long;
        for (int i = 0; steady::now() < until; ++i) {
            auto r = http_request(relay->public_port(), get(fmt::format("/r{}", i)), 25s);
            if (!r)
                bad.push_back(fmt::format("request {}: {}", i, r.error().message));
            else if ((r->status == 502 &&
                      (r->body.find("origin_unreachable") != std::string::npos ||
                       r->body.find("origin_closed") != std::string::npos)) ||
                     (r->status == 503 && r->body.find("tunnel_offline") != std::string::npos))
                ++cut;
            else if (r->status != 200)
                bad.push_back(fmt::format("request {}: {} {}", i, r->status, r->body));
            else
                ++answered;
            std::this_thread::sleep_for(100ms);
        }
        return bad;
    }

    std::optional<relay_fixture> relay;
    std::unique_ptr<http_origin> origin;
};

TEST_F(RelayTokenRenewal, TokenCommandKeepsTheTunnelPastEveryExpiry) {
    auto c =
        relay->connect("", {{"web", origin->port()}}, true, {"--token-command", mint_command()});
    ASSERT_TRUE(c) << c.error().message;
    ASSERT_TRUE(relay->wait_published("acme", "web", 10s)) << c->log();
    int answered = 0, cut = 0;
    const auto bad = load(11s, answered, cut);
    EXPECT_TRUE(bad.empty()) << fmt::format("{}", fmt::join(bad, "\n")) << "\n"
                             << c->log() << "\n"
                             << relay->log();
    EXPECT_GE(answered, 50);
    // 4 s tokens renewed 1 s before expiry: at least 3 renewals in 11 s, and
    // the relay never had to close the tunnel for an expired token.
    EXPECT_GE(client_events("token_renewed", c->log()), 3) << c->log();
    // Requests go one at a time: at most one cut per reattach (the gap).
    EXPECT_LE(cut, client_events("token_renewed", c->log())) << c->log();
    RecordProperty("cut", cut);
    EXPECT_GE(client_events("attached", c->log()), 4) << c->log();
    EXPECT_EQ(relay->log().find("token expired"), std::string::npos) << relay->log();
    EXPECT_TRUE(c->process().running()) << c->log();
    // The token never appears in a log.
    EXPECT_EQ(c->log().find("eyJ"), std::string::npos) << c->log();
}

TEST_F(RelayTokenRenewal, ARewrittenTokenFileIsPickedUp) {
    auto first = relay->mint("acme", "web", "4s");
    ASSERT_TRUE(first) << first.error().message;
    const std::string path = relay->token_file(*first);
    std::atomic<bool> done{false};
    // Whoever renews tokens (a cron job, a vault agent) rewrites the file
    // every 1.5 s: write a temporary file, rename it over the old one.
    std::thread writer([&] {
        while (!done) {
            for (int i = 0; i < 15 && !done; ++i) std::this_thread::sleep_for(100ms);
            if (done) break;
            auto t = relay->mint("acme", "web", "4s");
            if (!t) continue;
            std::ofstream(path + ".new") << *t << "\n";
            std::rename((path + ".new").c_str(), path.c_str());
        }
    });
    auto c = relay->connect("", {{"web", origin->port()}}, true, {"--token-file", path});
    ASSERT_TRUE(c) << c.error().message;
    int answered = 0, cut = 0;
    const auto bad = load(9s, answered, cut);
    // Before the writer stops: its last token then expires, as it should.
    const auto relay_log = relay->log();
    const bool running = c->process().running();
    done = true;
    writer.join();
    EXPECT_TRUE(bad.empty()) << fmt::format("{}", fmt::join(bad, "\n")) << "\n" << c->log();
    EXPECT_GE(client_events("token_renewed", c->log()), 2) << c->log();
    EXPECT_LE(cut, client_events("token_renewed", c->log())) << c->log();
    RecordProperty("cut", cut);
    EXPECT_EQ(relay_log.find("token expired"), std::string::npos) << relay_log << "\n" << c->log();
    EXPECT_TRUE(running) << c->log();
}

TEST(RelayTokenSourceCli, BadTokenSourcesAreRefusedWithAReason) {
    const std::string url = "ws://127.0.0.1:9/v1/tunnel";
    auto both = run_tunnel({"connect", url, "--token-file", "/etc/hostname", "--token-command",
                            "true", "--expose", "web=8080"});
    EXPECT_EQ(both.exit_code, 2) << both.describe();
    EXPECT_NE(both.err.find("excludes"), std::string::npos) << both.err;

    auto none = run_tunnel({"connect", url, "--expose", "web=8080"});
    EXPECT_NE(none.exit_code, 0) << none.describe();
    EXPECT_NE(none.err.find("--token-command"), std::string::npos) << none.err;

    auto failing =
        run_tunnel({"connect", url, "--token-command", "exit 3", "--expose", "web=8080"});
    EXPECT_NE(failing.exit_code, 0) << failing.describe();
    EXPECT_NE(failing.err.find("exited with status 3"), std::string::npos) << failing.err;

    auto words =
        run_tunnel({"connect", url, "--token-command", "echo two words", "--expose", "web=8080"});
    EXPECT_NE(words.exit_code, 0) << words.describe();
    EXPECT_NE(words.err.find("more than one word"), std::string::npos) << words.err;

    auto slow = run_tunnel({"connect", url, "--token-command", "sleep 5", "--token-command-timeout",
                            "300ms", "--expose", "web=8080"});
    EXPECT_NE(slow.exit_code, 0) << slow.describe();
    EXPECT_NE(slow.err.find("no token within 300 ms"), std::string::npos) << slow.err;
}

}  // namespace
}  // namespace tunnel::test
