// `tunnel connect` end to end through the real `tunnel relay`: publish and
// serve requests from the relay's public side, refuse a name the token does
// not allow, reconnect and re-publish after a relay restart, refuse a relay
// whose host key changed. All real processes on 127.0.0.1.
#include <fstream>
#include <regex>
#include <thread>

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/net.hpp"
#include "support/process.hpp"
#include "support/tcp_servers.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (pred()) return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(50ms);
    }
}

class RelayConnect : public ::testing::Test {
  protected:
    void SetUp() override {
        auto h = temp_dir::create("tunnel-relay-connect");
        ASSERT_TRUE(h);
        home.emplace(std::move(*h));
        ASSERT_TRUE(write_text_file(home->file("secret"),
                                    "relay-connect-test-secret-0123456789abcdef\n", 0600));
        auto o = http_origin::start("hello from the origin");
        ASSERT_TRUE(o) << o.error().message;
        origin = std::move(*o);
        auto t = run_tunnel({"token", "--secret-file", home->file("secret"), "--tenant", "acme",
                             "--allow", "web,api-*", "--ttl", "1h"},
                            cli());
        ASSERT_TRUE(t.ok()) << t.describe();
        ASSERT_TRUE(write_text_file(home->file("token"), t.out, 0600));
        auto p = unused_port();
        ASSERT_TRUE(p);
        relay_port = *p;
        start_relay("host_key");
    }

    cli_options cli() const {
        cli_options o;
        o.home = home->path();
        return o;
    }

    // tunnel relay --config with a fixed port and a persistent host key file.
    void start_relay(const std::string& key_file) {
        relay.reset();
        if (!std::ifstream(home->file(key_file))) {
            auto k =
                run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", home->file(key_file)});
            ASSERT_TRUE(k.ok()) << k.describe();
        }
        const auto config = home->file("relay.yaml");
        ASSERT_TRUE(write_text_file(
            config, fmt::format("listen: 127.0.0.1:{}\n"
                                "admin_listen: 127.0.0.1:0\n"
                                "host_key_file: {}\n"
                                "jwt:\n  secret_file: {}\n",
                                relay_port, home->file(key_file), home->file("secret"))));
        const auto log = home->file(fmt::format("relay-{}.log", ++relay_starts));
        spawn_options so;
        so.stdout_path = so.stderr_path = log;
        // The port was free a moment ago, or was ours before a restart: retry while it is released.
        for (int attempt = 0; attempt < 50 && !relay; ++attempt) {
            auto c = spawn({tunnel_binary(), "relay", "--config", config}, so);
            ASSERT_TRUE(c) << c.error().message;
            static const std::regex key_re(R"(host key: (SHA256:\S+))");
            std::smatch m;
            std::string out;
            const bool up = eventually(
                [&] {
                    return out = read_text_file(log).value_or(""),
                           std::regex_search(out, m, key_re) || !c->running();
                },
                15s);
            if (up && c->running() && port_accepts(relay_port)) {
                relay_key = m[1];
                relay.emplace(std::move(*c));
            } else {
                std::this_thread::sleep_for(100ms);
            }
        }
        ASSERT_TRUE(relay) << read_text_file(log).value_or("");
    }

    std::string url() const { return fmt::format("ws://127.0.0.1:{}/v1/tunnel", relay_port); }

    core::result<child_process> start_connect(std::vector<std::string> exposes,
                                              const std::string& name,
                                              std::vector<std::string> args_extra = {}) {
        std::vector<std::string> args{
            "connect", url(), "--token-file", home->file("token"), "--json", "--keepalive", "2s"};
        args.insert(args.end(), args_extra.begin(), args_extra.end());
        for (auto& e : exposes) {
            args.push_back("--expose");
            args.push_back(e);
        }
        return spawn_tunnel(args, home->path(), home->file(name + ".out"),
                            home->file(name + ".err"));
    }

    std::vector<nlohmann::json> events(const std::string& name) const {
        std::vector<nlohmann::json> out;
        auto text = read_text_file(home->file(name + ".out")).value_or("");
        std::size_t at = 0;
        while (at < text.size()) {
            auto nl = text.find('\n', at);
            if (nl == std::string::npos) break;
            auto j = nlohmann::json::parse(text.substr(at, nl - at), nullptr, false);
            if (!j.is_discarded()) out.push_back(j);
            at = nl + 1;
        }
        return out;
    }
    int count(const std::string& name, const std::string& event) const {
        int n = 0;
        for (auto& e : events(name)) n += e.value("event", "") == event;
        return n;
    }

    run_result curl(const std::string& url) const {
        run_options o;
        o.timeout = 15s;
        return run({"curl", "-sS", "--max-time", "10", url}, o);
    }

    std::optional<temp_dir> home;
    std::unique_ptr<http_origin> origin;
    std::optional<child_process> relay;
    std::string relay_key;
    uint16_t relay_port = 0;
    int relay_starts = 0;
};

TEST_F(RelayConnect, PublishesServesRequestsAndRepublishesAfterARelayRestart) {
    auto c = start_connect({fmt::format("web=127.0.0.1:{}", origin->port())}, "c");
    ASSERT_TRUE(c) << c.error().message;
    ASSERT_TRUE(eventually([&] { return count("c", "published") >= 1; }, 20s))
        << read_text_file(home->file("c.err")).value_or("");
    nlohmann::json published;
    for (auto& e : events("c"))
        if (e["event"] == "published") published = e;
    EXPECT_EQ(published["name"], "web");
    EXPECT_EQ(published["tenant"], "acme");
    ASSERT_FALSE(published["urls"].empty()) << published.dump();
    const std::string public_url = published["urls"].back();
    EXPECT_NE(public_url.find(fmt::format("127.0.0.1:{}/t/acme/web/", relay_port)),
              std::string::npos)
        << public_url;

    auto r = curl(public_url);
    ASSERT_TRUE(r.ok()) << r.describe() << "\n" << read_text_file(home->file("c.err")).value_or("");
    EXPECT_EQ(r.out, "hello from the origin");
    EXPECT_GE(origin->requests(), 1);

    // The relay goes away and comes back (same port, same host key): the
    // client reconnects by itself and publishes again.
    relay->terminate();
    start_relay("host_key");
    ASSERT_TRUE(eventually([&] { return count("c", "published") >= 2; }, 30s))
        << read_text_file(home->file("c.err")).value_or("");
    EXPECT_GE(count("c", "attached"), 2);
    auto again = curl(public_url);
    ASSERT_TRUE(again.ok()) << again.describe();
    EXPECT_EQ(again.out, "hello from the origin");
    EXPECT_TRUE(c->running());
}

TEST_F(RelayConnect, NameOutsideTheTokensAllowListIsRefused) {
    auto c = start_connect({fmt::format("secret=127.0.0.1:{}", origin->port()),
                            fmt::format("api-v1=127.0.0.1:{}", origin->port())},
                           "c");
    ASSERT_TRUE(c) << c.error().message;
    ASSERT_TRUE(
        eventually([&] { return count("c", "refused") >= 1 && count("c", "published") >= 1; }, 20s))
        << read_text_file(home->file("c.out")).value_or("")
        << read_text_file(home->file("c.err")).value_or("");
    for (auto& e : events("c")) {
        if (e["event"] == "refused") {
            EXPECT_EQ(e["name"], "secret");
        }
        if (e["event"] == "published") {
            EXPECT_EQ(e["name"], "api-v1");
        }
    }
    auto r = curl(fmt::format("http://127.0.0.1:{}/t/acme/api-v1/", relay_port));
    EXPECT_EQ(r.out, "hello from the origin") << r.describe();
}

TEST_F(RelayConnect, PinnedKeyWorksAndAChangedRelayKeyIsRefused) {
    const std::string expose = fmt::format("web=127.0.0.1:{}", origin->port());
    // First use with the key pinned from the relay's own start-up line.
    auto c = start_connect({expose}, "pinned", {"--relay-host-key", relay_key});
    ASSERT_TRUE(c) << c.error().message;
    ASSERT_TRUE(eventually([&] { return count("pinned", "published") >= 1; }, 20s))
        << read_text_file(home->file("pinned.err")).value_or("");
    c->terminate();

    // Recorded on first use by an unpinned run.
    auto first = start_connect({expose}, "first");
    ASSERT_TRUE(first) << first.error().message;
    ASSERT_TRUE(eventually([&] { return count("first", "published") >= 1; }, 20s))
        << read_text_file(home->file("first.err")).value_or("");
    first->terminate();
    const auto before = relay_key;

    start_relay("other_host_key");  // same address, new identity
    ASSERT_NE(relay_key, before);
    auto r = run_tunnel({"connect", url(), "--token-file", home->file("token"), "--expose", expose,
                         "--no-reconnect"},
                        cli());
    EXPECT_EQ(r.exit_code, 255) << r.describe();
    EXPECT_NE(r.err.find("HOST KEY CHANGED"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(before), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(relay_key), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("relay_known_hosts"), std::string::npos) << r.err;
}

TEST_F(RelayConnect, BadTokenIsRefusedWithTheRelaysReason) {
    ASSERT_TRUE(
        write_text_file(home->file("other-secret"), "some-other-secret-0123456789abcdef\n", 0600));
    auto t = run_tunnel({"token", "--secret-file", home->file("other-secret"), "--tenant", "acme",
                         "--allow", "web", "--ttl", "1h"},
                        cli());
    ASSERT_TRUE(t.ok()) << t.describe();
    ASSERT_TRUE(write_text_file(home->file("bad-token"), t.out, 0600));
    auto r = run_tunnel(
        {"connect", url(), "--token-file", home->file("bad-token"), "--expose", "web=1"}, cli());
    EXPECT_EQ(r.exit_code, 255) << r.describe();
    EXPECT_NE(r.err.find("HTTP 401"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find(t.out.substr(0, 20)), std::string::npos) << "never print the token";
}

TEST_F(RelayConnect, FirstUsePrintsTheRelayHostKeyFingerprintOnce) {
    const std::string expose = fmt::format("web=127.0.0.1:{}", origin->port());
    auto first = start_connect({expose}, "first");
    ASSERT_TRUE(first) << first.error().message;
    ASSERT_TRUE(eventually([&] { return count("first", "published") >= 1; }, 20s))
        << read_text_file(home->file("first.err")).value_or("");
    const auto err = read_text_file(home->file("first.err")).value_or("");
    const auto relay_name = fmt::format("[127.0.0.1]:{}", relay_port);
    EXPECT_NE(err.find(fmt::format("first connection to {}: its SSH host key is {}", relay_name,
                                   relay_key)),
              std::string::npos)
        << err;
    ASSERT_EQ(count("first", "host_key_recorded"), 1);
    for (auto& e : events("first"))
        if (e["event"] == "host_key_recorded") {
            EXPECT_EQ(e["fingerprint"], relay_key);
            EXPECT_EQ(e["relay"], relay_name);
            EXPECT_NE(e["known_hosts"].get<std::string>().find("relay_known_hosts"),
                      std::string::npos);
        }
    first->terminate();

    // Known from now on: nothing to report.
    auto second = start_connect({expose}, "second");
    ASSERT_TRUE(second) << second.error().message;
    ASSERT_TRUE(eventually([&] { return count("second", "published") >= 1; }, 20s));
    EXPECT_EQ(count("second", "host_key_recorded"), 0);
    EXPECT_EQ(read_text_file(home->file("second.err")).value_or("").find("first connection"),
              std::string::npos);
}

TEST_F(RelayConnect, CleartextTokenToAHostThatIsNotLoopbackNeedsAllowPlaintext) {
    // 192.0.2.1 (TEST-NET-1) would swallow a SYN for the whole --connect-timeout:
    // a quick exit 2 shows nothing was attempted.
    for (std::vector<std::string> args :
         {std::vector<std::string>{"connect", "ws://192.0.2.1:1/v1/tunnel", "--token-file",
                                   home->file("token"), "--expose", "web=1", "--connect-timeout",
                                   "60s", "--no-reconnect"},
          std::vector<std::string>{"ws-connect", "ws://192.0.2.1:1/v1/tunnel", "--token-file",
                                   home->file("token"), "--connect-timeout", "60s"}}) {
        const auto start = std::chrono::steady_clock::now();
        auto r = run_tunnel(args, cli());
        EXPECT_LT(std::chrono::steady_clock::now() - start, 10s) << "no connection attempt";
        EXPECT_EQ(r.exit_code, 2) << r.describe();
        EXPECT_NE(r.err.find("cleartext"), std::string::npos) << r.err;
        EXPECT_NE(r.err.find("wss://192.0.2.1"), std::string::npos) << r.err;
        EXPECT_NE(r.err.find("--allow-plaintext"), std::string::npos) << r.err;
    }

    // 0.0.0.0 is not loopback by name, but Linux connects it to this host: it
    // stands in for a trusted private address without traffic leaving 127.0.0.1.
    const std::string expose = fmt::format("web=127.0.0.1:{}", origin->port());
    const auto any = fmt::format("ws://0.0.0.0:{}/v1/tunnel", relay_port);
    auto refused = run_tunnel(
        {"connect", any, "--token-file", home->file("token"), "--expose", expose, "--no-reconnect"},
        cli());
    EXPECT_EQ(refused.exit_code, 2) << refused.describe();
    EXPECT_NE(refused.err.find("cleartext"), std::string::npos) << refused.err;

    auto allowed = spawn_tunnel({"connect", any, "--token-file", home->file("token"), "--json",
                                 "--allow-plaintext", "--expose", expose},
                                home->path(), home->file("plain.out"), home->file("plain.err"));
    ASSERT_TRUE(allowed) << allowed.error().message;
    ASSERT_TRUE(eventually([&] { return count("plain", "published") >= 1; }, 20s))
        << read_text_file(home->file("plain.err")).value_or("");
    auto r = curl(fmt::format("http://127.0.0.1:{}/t/acme/web/", relay_port));
    EXPECT_EQ(r.out, "hello from the origin") << r.describe();
    allowed->terminate();

    // Loopback needs no flag (the other tests here run on ws://127.0.0.1).
    auto loopback = start_connect({expose}, "loopback");
    ASSERT_TRUE(loopback) << loopback.error().message;
    ASSERT_TRUE(eventually([&] { return count("loopback", "published") >= 1; }, 20s))
        << read_text_file(home->file("loopback.err")).value_or("");
}

TEST_F(RelayConnect, ANameAskedWithAccessTokenIsNeverServedToAnonymousCallers) {
    // Whatever the relay does with the request (a relay that does not know
    // visitor access refuses the publish; one that does answers 401), an
    // anonymous caller never reaches the origin.
    auto c = start_connect({fmt::format("web=127.0.0.1:{}", origin->port())}, "c",
                           {"--access", "token"});
    ASSERT_TRUE(c) << c.error().message;
    ASSERT_TRUE(
        eventually([&] { return count("c", "published") + count("c", "refused") >= 1; }, 20s))
        << read_text_file(home->file("c.err")).value_or("");
    for (auto& e : events("c")) {
        if (e["event"] == "published" || e["event"] == "refused") {
            EXPECT_EQ(e["access"], "token");
        }
    }
    run_options o;
    o.timeout = 15s;
    auto r = run({"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                  fmt::format("http://127.0.0.1:{}/t/acme/web/", relay_port)},
                 o);
    EXPECT_NE(r.out, "200") << r.describe();
    EXPECT_EQ(origin->requests(), 0);
}

}  // namespace
}  // namespace tunnel::test
