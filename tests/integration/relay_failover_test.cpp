// `tunnel connect URL --relay URL2` (issue 12, "Clients"): two real relays on
// 127.0.0.1 that accept the same tokens. The client attaches to the first;
// when it is killed the names come up on the second within a few seconds;
// when it is back the client returns to it.
#include <csignal>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/net.hpp"
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

std::vector<nlohmann::json> events(const std::string& log, const std::string& what) {
    std::vector<nlohmann::json> out;
    std::istringstream lines(log);
    for (std::string line; std::getline(lines, line);) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_object() && j.value("event", "") == what) out.push_back(std::move(j));
    }
    return out;
}

// Starts a relay again on the config, host key, secret and ports of one
// whose process was killed (a client that knew it finds it again).
core::result<child_process> restart(const relay_fixture& dead) {
    const std::string dir = dead.secret_path().substr(0, dead.secret_path().rfind('/'));
    auto yaml = read_text_file(dir + "/relay.yaml");
    if (!yaml) return tl::unexpected(yaml.error());
    std::string text = *yaml;
    const std::string any = "127.0.0.1:0\n";
    const auto a = text.find("listen: " + any);
    const auto b = text.find("admin_listen: " + any);
    if (a != 0 || b == std::string::npos)
        return core::fail(core::errc::invalid_argument, "unexpected relay.yaml: " + text);
    text.replace(b + 14, any.size(), fmt::format("127.0.0.1:{}\n", dead.admin_port()));
    text.replace(a + 8, any.size(), fmt::format("127.0.0.1:{}\n", dead.public_port()));
    const std::string config = dir + "/relay-again.yaml";
    if (auto w = write_text_file(config, text); !w) return tl::unexpected(w.error());
    spawn_options so;
    so.stdout_path = dir + "/relay-again.out";
    so.stderr_path = dir + "/relay-again.log";
    so.env.set.push_back({"HOME", dir});
    auto child = spawn({tunnel_binary(), "-v", "relay", "--config", config}, so);
    if (!child) return tl::unexpected(child.error());
    const auto until = steady::now() + 15s;
    while (steady::now() < until) {
        const auto out = read_text_file(so.stdout_path).value_or("");
        if (out.find("admin: ") != std::string::npos) return std::move(*child);
        if (!child->running())
            return core::fail(
                core::errc::connection_failed,
                "the relay did not start again: " + read_text_file(so.stderr_path).value_or(""));
        std::this_thread::sleep_for(10ms);
    }
    return core::fail(core::errc::timeout, "the relay did not start again in 15 s");
}

const std::string yaml =
    "limits:\n  tenant_rps: 1000\n  route_rps: 1000\n  route_burst: 1000\n"
    "leases: {grace: 30s}\nqueue: {max_wait: 5s}\n";

class RelayFailover : public ::testing::Test {
  protected:
    void SetUp() override {
        relay_options a;
        a.extra_yaml = yaml;
        auto ra = relay_fixture::start(std::move(a));
        ASSERT_TRUE(ra) << ra.error().message;
        first.emplace(std::move(*ra));
        relay_options b;
        b.extra_yaml = yaml;
        b.share_secret_of = first->secret_path();  // the same tokens are good at both
        auto rb = relay_fixture::start(std::move(b));
        ASSERT_TRUE(rb) << rb.error().message;
        second.emplace(std::move(*rb));
        auto origin_or = http_origin::start("ok");
        ASSERT_TRUE(origin_or) << origin_or.error().message;
        origin = std::move(*origin_or);
        auto token = first->mint("acme", "web");
        ASSERT_TRUE(token) << token.error().message;
        token_ = *token;
    }

    // Requests through `port` until one gets 200 (true) or `limit` passes.
    static bool until_served(std::uint16_t port, std::chrono::milliseconds limit,
                             std::string& last) {
        const auto until = steady::now() + limit;
        for (int i = 0; steady::now() < until; ++i) {
            auto r = http_request(port, get(fmt::format("/wait{}", i)), 3s);
            if (r && r->status == 200) return true;
            last = r ? fmt::format("{} {}", r->status, r->body) : r.error().message;
            std::this_thread::sleep_for(50ms);
        }
        return false;
    }

    std::optional<relay_fixture> first, second;
    std::unique_ptr<http_origin> origin;
    std::string token_;
};

TEST_F(RelayFailover, KilledRelayMovesTheNamesToTheNextAndTheyComeBackWhenItReturns) {
    auto c = first->connect(token_, {{"web", origin->port()}}, true,
                            {"--relay", second->attach_url(), "--relay-probe-interval", "200ms"});
    ASSERT_TRUE(c) << c.error().message;
    auto r = http_request(first->public_port(), get("/on-first"), 5s);
    ASSERT_TRUE(r && r->status == 200) << (r ? r->raw : r.error().message) << c->log();

    // The first relay dies: the names come up on the second within seconds.
    first->process().signal(SIGKILL);
    (void)first->process().wait(5s);
    const auto killed = steady::now();
    std::string last;
    ASSERT_TRUE(until_served(second->public_port(), 8s, last)) << last << "\n" << c->log();
    const auto moved_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - killed).count();
    EXPECT_LT(moved_ms, 5000) << c->log();
    RecordProperty("failover_ms", static_cast<int>(moved_ms));
    auto switched = events(c->log(), "relay_switched");
    ASSERT_EQ(switched.size(), 1u) << c->log();
    EXPECT_EQ(switched[0].value("reason", ""), "failover");
    EXPECT_EQ(switched[0].value("from", ""), first->attach_url());
    EXPECT_EQ(switched[0].value("to", ""), second->attach_url());
    // While the first is down the client stays where it is (it only probes).
    for (int i = 0; i < 10; ++i) {
        auto s = http_request(second->public_port(), get(fmt::format("/second{}", i)), 5s);
        EXPECT_TRUE(s && s->status == 200) << (s ? s->raw : s.error().message);
    }

    // The first relay is back (same port, same host key). Callers try it
    // first and the second when it does not have the name (as a load
    // balancer or a name with both addresses would): while the client moves
    // back, no request fails.
    auto again = restart(*first);
    ASSERT_TRUE(again) << again.error().message;
    const auto restarted = steady::now();
    std::vector<std::string> failed;
    int on_first = 0, on_second = 0, after_move = 0;
    std::optional<steady::time_point> moved_at;
    for (int i = 0; steady::now() - restarted < 10s; ++i) {
        const auto path = fmt::format("/move{}", i);
        auto a = http_request(first->public_port(), get(path), 5s);
        if (a && a->status == 200) {
            ++on_first;
        } else if (!a ||
                   (a->status == 503 && a->body.find("tunnel_offline") != std::string::npos)) {
            auto b = http_request(second->public_port(), get(path), 5s);
            if (b && b->status == 200)
                ++on_second;
            else
                failed.push_back(fmt::format("{}: first {}; second {}", path,
                                             a ? a->raw : a.error().message,
                                             b ? b->raw : b.error().message));
        } else {
            failed.push_back(fmt::format("{}: first {}", path, a->raw));
        }
        if (moved_at && ++after_move >= 20) break;
        if (!moved_at) {
            auto sw = events(c->log(), "relay_switched");
            if (sw.size() >= 2) moved_at = steady::now();
        }
        std::this_thread::sleep_for(30ms);
    }
    ASSERT_TRUE(moved_at) << "the client did not move back\n" << c->log();
    RecordProperty(
        "back_ms",
        static_cast<int>(
            std::chrono::duration_cast<std::chrono::milliseconds>(*moved_at - restarted).count()));
    EXPECT_TRUE(failed.empty()) << fmt::format("{}", fmt::join(failed, "\n")) << "\n" << c->log();
    EXPECT_GE(on_first, 20) << c->log();
    EXPECT_GE(on_second, 1) << c->log();  // the requests before the move
    switched = events(c->log(), "relay_switched");
    ASSERT_EQ(switched.size(), 2u) << c->log();
    EXPECT_EQ(switched[1].value("reason", ""), "preferred");
    EXPECT_EQ(switched[1].value("from", ""), second->attach_url());
    EXPECT_EQ(switched[1].value("to", ""), first->attach_url());
    // The second relay let the names go when the client left it.
    auto left = http_request(second->public_port(), get("/left"), 5s);
    ASSERT_TRUE(left) << left.error().message;
    EXPECT_EQ(left->status, 503) << left->raw;
    EXPECT_TRUE(c->process().running()) << c->log();
}

TEST_F(RelayFailover, ADownFirstRelayIsSkippedWithBackoffAndProbedUntilItAnswers) {
    // Nothing listens on the first relay's port at start.
    first->process().signal(SIGKILL);
    (void)first->process().wait(5s);
    const auto started = steady::now();
    auto c = first->connect(token_, {{"web", origin->port()}}, true,
                            {"--relay", second->attach_url(), "--relay-probe-interval", "200ms"});
    ASSERT_TRUE(c) << c.error().message;
    const auto attached_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - started).count();
    auto r = http_request(second->public_port(), get("/on-second"), 5s);
    EXPECT_TRUE(r && r->status == 200) << (r ? r->raw : r.error().message) << c->log();
    EXPECT_LT(attached_ms, 5000) << c->log();
    auto attached = events(c->log(), "attached");
    ASSERT_FALSE(attached.empty()) << c->log();
    EXPECT_EQ(attached.back().value("relay", ""), second->attach_url());
    // The refused first attempt was followed by a backoff before the next relay.
    EXPECT_NE(c->log().find("retrying in"), std::string::npos) << c->log();
    // Probed, not attached to, while it is down: still on the second.
    std::this_thread::sleep_for(700ms);
    EXPECT_TRUE(events(c->log(), "relay_switched").empty()) << c->log();
    EXPECT_EQ(events(c->log(), "attached").size(), 1u) << c->log();
}

TEST(RelayFailoverCli, BadRelayValuesAreRefusedBeforeConnecting) {
    const std::string url = "ws://127.0.0.1:9/v1/tunnel";
    auto run_with = [&](std::vector<std::string> extra) {
        std::vector<std::string> args{"connect",    url,        "--token-command",
                                      "echo x.y.z", "--expose", "web=127.0.0.1:8080"};
        args.insert(args.end(), extra.begin(), extra.end());
        return run_tunnel(args);
    };
    auto scheme = run_with({"--relay", "https://relay2.example.com/v1/tunnel"});
    EXPECT_EQ(scheme.exit_code, 2) << scheme.describe();
    EXPECT_NE(scheme.err.find("--relay https://relay2.example.com/v1/tunnel"), std::string::npos)
        << scheme.err;

    // (A relay given twice, ws:// off loopback, more than 16: relay_failover_test.cpp.)
    auto probe =
        run_with({"--relay", "ws://127.0.0.1:10/v1/tunnel", "--relay-probe-interval", "10ms"});
    EXPECT_EQ(probe.exit_code, 2) << probe.describe();
    EXPECT_NE(probe.err.find("--relay-probe-interval"), std::string::npos) << probe.err;
}

}  // namespace
}  // namespace tunnel::test
