// Finding 4, end to end: under path routing every tenant shares the relay's
// browser origin, so the relay keeps an origin's Service-Worker-Allowed from
// the caller and warns at start; with a domain, routing is by host (each
// service its own origin), /t/... is refused, and `tunnel connect` prints the
// host-routed URL. A real `tunnel relay`, real clients, a real origin.
#include <thread>

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/process.hpp"
#include "support/relay_fixture.hpp"
#include "support/streaming_origin.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string get(const std::string& path, const std::string& host) {
    return fmt::format("GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", path, host);
}

bool has_sw_allowed(const http_reply& r) {
    return lower(r.head).find("service-worker-allowed") != std::string::npos;
}

std::string error_code_of(const http_reply& r) {
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    return j.is_object() ? j.value("error", "") : "";
}

class RelayRouting : public ::testing::Test {
  protected:
    void start_relay(relay_options o = {}) {
        auto r = relay_fixture::start(std::move(o));
        ASSERT_TRUE(r) << r.error().message;
        relay.emplace(std::move(*r));
        auto org = streaming_origin::start();
        ASSERT_TRUE(org) << org.error().message;
        origin = std::move(*org);
        auto tok = relay->mint("alice", "web");
        ASSERT_TRUE(tok) << tok.error().message;
        auto c = relay->publish("alice", *tok, "web", origin->port());
        ASSERT_TRUE(c) << c.error().message;
        client.emplace(std::move(*c));
    }

    http_reply request(const std::string& text) {
        auto r = http_request(relay->public_port(), text, 10s);
        EXPECT_TRUE(r) << r.error().message;
        return r ? *r : http_reply{};
    }

    // "<name>--<tenant>.relay.test:PORT"; the relay's own name without a label.
    std::string host(const std::string& label = {}) const {
        return fmt::format("{}{}relay.test:{}", label, label.empty() ? "" : ".",
                           relay->public_port());
    }

    std::optional<relay_fixture> relay;
    std::unique_ptr<streaming_origin> origin;
    std::optional<relay_client> client;
};

TEST_F(RelayRouting, PathRoutingDropsServiceWorkerAllowedAndWarns) {
    start_relay();  // dev mode: no domain, path routing
    auto r = request(get("/t/alice/web/sw.js", "127.0.0.1"));
    EXPECT_EQ(r.status, 200) << r.raw;
    EXPECT_NE(r.body.find("addEventListener"), std::string::npos) << r.raw;
    EXPECT_FALSE(has_sw_allowed(r)) << "a service worker could take every tenant's pages:\n"
                                    << r.head;
    EXPECT_NE(r.head.find("Content-Type: text/javascript"), std::string::npos) << r.head;
    EXPECT_NE(relay->log().find("share one browser origin"), std::string::npos) << relay->log();
    // Other responses are unchanged.
    auto hello = request(get("/t/alice/web/hello", "127.0.0.1"));
    EXPECT_EQ(hello.status, 200);
    EXPECT_EQ(hello.body, "hello\n");
}

TEST_F(RelayRouting, WithADomainRoutingIsByHostOnly) {
    start_relay({.extra_yaml = "domain: relay.test\n"});
    auto r = request(get("/sw.js", host("web--alice")));
    EXPECT_EQ(r.status, 200) << r.raw;
    EXPECT_TRUE(has_sw_allowed(r)) << "a host-routed service has its own origin:\n" << r.head;
    auto hello = request(get("/hello", host("web--alice")));
    EXPECT_EQ(hello.status, 200) << hello.raw;
    EXPECT_EQ(hello.body, "hello\n");

    auto path = request(get("/t/alice/web/hello", host()));
    EXPECT_EQ(path.status, 404) << path.raw;
    EXPECT_EQ(error_code_of(path), "no_route");
    EXPECT_NE(path.body.find("web--alice.relay.test"), std::string::npos) << path.body;
    EXPECT_EQ(origin->requests(), 2) << "the refused path route never reached the origin";
    EXPECT_EQ(relay->log().find("share one browser origin"), std::string::npos) << relay->log();
}

TEST_F(RelayRouting, BothRoutesEachFormAndFiltersOnlyThePathForm) {
    start_relay({.extra_yaml = "domain: relay.test\nrouting: both\n"});
    auto by_host = request(get("/sw.js", host("web--alice")));
    EXPECT_EQ(by_host.status, 200) << by_host.raw;
    EXPECT_TRUE(has_sw_allowed(by_host)) << by_host.head;
    auto by_path = request(get("/t/alice/web/sw.js", host()));
    EXPECT_EQ(by_path.status, 200) << by_path.raw;
    EXPECT_FALSE(has_sw_allowed(by_path)) << by_path.head;
    EXPECT_NE(relay->log().find("share one browser origin"), std::string::npos) << relay->log();
}

TEST_F(RelayRouting, TunnelConnectPrintsTheHostRoutedUrl) {
    start_relay({.extra_yaml = "domain: relay.test\n"});
    auto h = temp_dir::create("tunnel-routing-connect");
    ASSERT_TRUE(h);
    auto tok = relay->mint("acme", "api");
    ASSERT_TRUE(tok);
    auto c = spawn_tunnel({"connect", relay->attach_url(), "--token-file", relay->token_file(*tok),
                           "--json", "--expose", fmt::format("api=127.0.0.1:{}", origin->port())},
                          h->path(), h->file("out"), h->file("err"));
    ASSERT_TRUE(c) << c.error().message;
    nlohmann::json published;
    ASSERT_TRUE(streaming_origin::wait_until(
        [&] {
            auto text = read_text_file(h->file("out")).value_or("");
            for (std::size_t at = 0, nl; (nl = text.find('\n', at)) != std::string::npos;
                 at = nl + 1) {
                auto j = nlohmann::json::parse(text.substr(at, nl - at), nullptr, false);
                if (j.is_object() && j.value("event", "") == "published") published = j;
            }
            return !published.is_null();
        },
        20s))
        << read_text_file(h->file("err")).value_or("");
    const std::string url = fmt::format("http://api--acme.relay.test:{}/", relay->public_port());
    EXPECT_EQ(published["urls"], nlohmann::json::array({url})) << published.dump();

    auto r = run({"curl", "-sS", "--max-time", "10", "--resolve",
                  fmt::format("api--acme.relay.test:{}:127.0.0.1", relay->public_port()),
                  url + "hello"});
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(r.out, "hello\n");
    c->terminate();
}

}  // namespace
}  // namespace tunnel::test
