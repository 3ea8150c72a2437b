// `tunnel relay` reloads its config on SIGHUP (docs/relay.md "Reloading the
// configuration"): live keys apply to new requests while an attached tunnel
// keeps serving; a change that needs a restart, or a file that does not
// parse or validate, is refused with a message and the old config stays.
#include <atomic>
#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include <fmt/format.h>

#include "support/relay_fixture.hpp"
#include "support/tcp_servers.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

// The generated config file: next to the fixture's secret.
std::string config_path(const relay_fixture& relay) {
    const auto& secret = relay.secret_path();
    return secret.substr(0, secret.rfind('/') + 1) + "relay.yaml";
}

int status(const relay_fixture& relay) {
    auto r = http_request(
        relay.public_port(),
        "GET /t/acme/web/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 5s);
    return r ? r->status : -1;
}

class RelayReload : public ::testing::Test {
  protected:
    void SetUp() override {
        relay_options o;
        o.audit_log = true;
        o.extra_yaml = "limits:\n  tenant_rps: 1000\n  route_rps: 1\n  route_burst: 1\n";
        auto r = relay_fixture::start(std::move(o));
        ASSERT_TRUE(r) << r.error().message;
        relay.emplace(std::move(*r));
        auto origin_or = http_origin::start("ok");
        ASSERT_TRUE(origin_or) << origin_or.error().message;
        origin = std::move(*origin_or);
        original = read_file(config_path(*relay));
        auto token = relay->mint("acme", "web");
        ASSERT_TRUE(token);
        auto c = relay->connect(*token, {{"web", origin->port()}});
        ASSERT_TRUE(c) << c.error().message;
        client.emplace(std::move(*c));
        ASSERT_TRUE(relay->wait_published("acme", "web", 10s)) << client->log();
    }

    // Writes `text` as the config file, sends SIGHUP and waits for the
    // relay's verdict: true when applied, false when refused.
    bool reload(const std::string& text) {
        EXPECT_TRUE(write_text_file(config_path(*relay), text));
        const auto before = count(relay->log(), "config reload");
        relay->process().signal(SIGHUP);
        const auto deadline = steady::now() + 10s;
        while (count(relay->log(), "config reload") == before && steady::now() < deadline)
            std::this_thread::sleep_for(20ms);
        const auto log = relay->log();
        EXPECT_GT(count(log, "config reload"), before) << "no verdict on SIGHUP\n" << log;
        return log.rfind("config reloaded") != std::string::npos &&
               (log.rfind("config reload refused") == std::string::npos ||
                log.rfind("config reloaded") > log.rfind("config reload refused"));
    }

    // The route limit of 1 request/s is in force: of two requests at once, one is refused.
    bool limited() { return status(*relay) == 429 || status(*relay) == 429; }

    std::optional<relay_fixture> relay;
    std::unique_ptr<http_origin> origin;
    std::optional<relay_client> client;
    std::string original;
};

TEST_F(RelayReload, SighupRaisesARateLimitWhileATunnelKeepsServing) {
    ASSERT_TRUE(limited());
    // Requests all along: each is answered 200 or 429, never cut or 5xx.
    std::atomic<bool> stop{false};
    std::vector<int> statuses;
    std::thread load([&] {
        while (!stop) {
            statuses.push_back(status(*relay));
            std::this_thread::sleep_for(10ms);
        }
    });
    std::string next = original;
    const auto at = next.find("route_rps: 1\n");
    ASSERT_NE(at, std::string::npos) << next;
    next.replace(at, 13, "route_rps: 1000\n");
    next.replace(next.find("route_burst: 1\n"), 15, "route_burst: 1000\n");
    // A tenant gets agent forwarding: a new per-tenant rule.
    next += "agent_forwarding:\n  tenants: [newco]\n";
    std::this_thread::sleep_for(200ms);
    const bool applied = reload(next);
    std::this_thread::sleep_for(300ms);
    stop = true;
    load.join();
    ASSERT_TRUE(applied) << relay->log();
    for (int s : statuses) EXPECT_TRUE(s == 200 || s == 429) << s;
    // The new limit is in force for requests after the reload.
    for (int i = 0; i < 20; ++i) ASSERT_EQ(status(*relay), 200) << i;
    const auto log = relay->log();
    EXPECT_NE(log.find("limits.route_rps: 1 -> 1000"), std::string::npos) << log;
    EXPECT_NE(log.find("agent_forwarding.tenants"), std::string::npos) << log;
    const auto audit = read_file(relay->audit_path());
    EXPECT_NE(audit.find("\"config_reload\""), std::string::npos) << audit;
    EXPECT_NE(audit.find("\"applied\""), std::string::npos) << audit;
    EXPECT_TRUE(client->process().running()) << client->log();
    EXPECT_EQ(count(relay->log(), "detached"), 0u) << relay->log();
}

TEST_F(RelayReload, AChangedListenAddressIsRefusedAndTheOldConfigStays) {
    std::string next = original;
    next.replace(next.find("listen: 127.0.0.1:0\n"), 20, "listen: 127.0.0.1:1\n");
    next.replace(next.find("route_rps: 1\n"), 13, "route_rps: 1000\n");
    EXPECT_FALSE(reload(next));
    const auto log = relay->log();
    EXPECT_NE(log.find("not reloaded: listen takes effect only at start"), std::string::npos)
        << log;
    EXPECT_NE(log.find("listen: 127.0.0.1:0 (plain HTTP) -> 127.0.0.1:1 (plain HTTP)"),
              std::string::npos)
        << log;
    // Nothing of that file applied: the route limit is still 1/s.
    std::this_thread::sleep_for(1100ms);
    EXPECT_TRUE(limited());
    const auto audit = read_file(relay->audit_path());
    EXPECT_NE(audit.find("\"refused\""), std::string::npos) << audit;
    EXPECT_TRUE(client->process().running()) << client->log();
}

TEST_F(RelayReload, ABrokenFileIsRefusedAndTheOldConfigStays) {
    EXPECT_FALSE(reload(original + "limits: [\n"));
    EXPECT_FALSE(reload(original + "workers: 1\nbogus_key: 1\n"));
    EXPECT_NE(relay->log().find("bogus_key"), std::string::npos) << relay->log();
    std::string bad = original;
    bad.replace(bad.find("route_rps: 1\n"), 13, "route_rps: -5\n");
    EXPECT_FALSE(reload(bad));
    EXPECT_NE(relay->log().find("limits.route_rps"), std::string::npos) << relay->log();
    std::this_thread::sleep_for(1100ms);
    EXPECT_TRUE(limited());
    // A good file afterwards is applied, from the next request on: the
    // raised burst is credited at once (it once refilled at the old rate
    // first, and a request within a millisecond of that got 429).
    std::string good = original;
    good.replace(good.find("route_rps: 1\n"), 13, "route_rps: 1000\n");
    good.replace(good.find("route_burst: 1\n"), 15, "route_burst: 1000\n");
    EXPECT_TRUE(reload(good)) << relay->log();
    for (int i = 0; i < 6; ++i) EXPECT_EQ(status(*relay), 200) << i;
}

}  // namespace
}  // namespace tunnel::test
