// Finding 4 (tenants share one browser origin under path routing): the
// `routing` key, the routing decision per mode, the URL the relay hands out,
// and the step that keeps Service-Worker-Allowed from path-routed callers.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "core/asio.hpp"
#include "relay/proxy_headers.hpp"
#include "relay/public_route.hpp"
#include "relay/relay_config.hpp"
#include "relay/relay_state.hpp"

namespace tunnel::relay {
namespace {

namespace fs = std::filesystem;

constexpr const char* base_yaml =
    "listen: 127.0.0.1:8443\nhost_key_file: /var/lib/tunnel/host\njwt:\n  secret_file: "
    "/etc/tunnel/jwt.secret\n";

core::result<relay_config> parse_with(const std::string& extra) {
    return parse_relay_config(std::string(base_yaml) + extra, "relay.yaml");
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

// ---------------------------------------------------------------- config

TEST(RelayRouting, ModesParseAndPrint) {
    for (auto m : {routing_mode::host, routing_mode::path, routing_mode::both}) {
        auto p = parse_routing_mode(to_string(m));
        ASSERT_TRUE(p);
        EXPECT_EQ(*p, m);
    }
    EXPECT_EQ(*parse_routing_mode("HOST"), routing_mode::host);
    auto bad = parse_routing_mode("subdomain");
    ASSERT_FALSE(bad);
    EXPECT_TRUE(contains(bad.error().message, "host")) << bad.error().message;
    EXPECT_TRUE(contains(bad.error().message, "path")) << bad.error().message;
}

TEST(RelayRouting, DefaultIsHostWithADomainAndPathWithout) {
    auto with_domain = parse_with("domain: relay.example.com\n");
    ASSERT_TRUE(with_domain) << with_domain.error().message;
    EXPECT_FALSE(with_domain->routing);
    EXPECT_EQ(routing_of(*with_domain), routing_mode::host);

    auto without = parse_with("");
    ASSERT_TRUE(without) << without.error().message;
    EXPECT_EQ(routing_of(*without), routing_mode::path);

    auto dev = dev_config("127.0.0.1:0", "127.0.0.1:0", "/dev/null");
    ASSERT_TRUE(dev) << dev.error().message;
    EXPECT_EQ(routing_of(*dev), routing_mode::path);
}

TEST(RelayRouting, ExplicitModes) {
    auto both = parse_with("domain: relay.example.com\nrouting: both\n");
    ASSERT_TRUE(both) << both.error().message;
    EXPECT_EQ(routing_of(*both), routing_mode::both);
    auto path = parse_with("domain: relay.example.com\nrouting: path\n");
    ASSERT_TRUE(path) << path.error().message;
    EXPECT_EQ(routing_of(*path), routing_mode::path);

    bool found = false;
    for (const auto& line : describe(*both)) found = found || line == "routing: both";
    EXPECT_TRUE(found);
    found = false;
    for (const auto& line : describe(*parse_with("domain: relay.example.com\n")))
        found = found || line == "routing: host (default with a domain)";
    EXPECT_TRUE(found);
}

TEST(RelayRouting, HostRoutingNeedsADomainAndBadModesAreRefused) {
    auto host = parse_with("routing: host\n");
    ASSERT_FALSE(host);
    EXPECT_TRUE(contains(host.error().message, "routing: host needs domain"))
        << host.error().message;
    auto both = parse_with("routing: both\n");
    ASSERT_FALSE(both);
    EXPECT_TRUE(contains(both.error().message, "routing: both needs domain"))
        << both.error().message;
    auto bad = parse_with("domain: relay.example.com\nrouting: cookies\n");
    ASSERT_FALSE(bad);
    EXPECT_TRUE(contains(bad.error().message, "relay.yaml: routing: \"cookies\" is not a routing"))
        << bad.error().message;
    auto list = parse_with("domain: relay.example.com\nrouting: [host]\n");
    EXPECT_FALSE(list);
}

// ---------------------------------------------------------------- decisions

TEST(RelayRouting, HostModeRefusesPathRoutesWith404NamingTheHostUrl) {
    auto by_host =
        route_request("llm--acme.relay.test:8443", "/v1/chat", "relay.test", routing_mode::host);
    ASSERT_TRUE(by_host) << by_host.error().message;
    EXPECT_EQ(by_host->tenant, "acme");
    EXPECT_EQ(by_host->name, "llm");
    EXPECT_EQ(by_host->target, "/v1/chat");
    EXPECT_TRUE(by_host->by_host);

    // The relay's own name with a path route: path routing is off.
    auto by_path =
        route_request("relay.test", "/t/acme/llm/v1/chat", "relay.test", routing_mode::host);
    ASSERT_FALSE(by_path);
    EXPECT_EQ(by_path.error().code, core::errc::not_found);
    EXPECT_TRUE(contains(by_path.error().message, "routing: host")) << by_path.error().message;
    EXPECT_TRUE(contains(by_path.error().message, "llm--acme.relay.test"))
        << by_path.error().message;

    auto nothing = route_request("relay.test", "/", "relay.test", routing_mode::host);
    ASSERT_FALSE(nothing);
    EXPECT_EQ(nothing.error().code, core::errc::not_found);
    EXPECT_FALSE(contains(nothing.error().message, "/t/<tenant>")) << nothing.error().message;

    // A malformed host route is still a 400, as before.
    auto bad = route_request("a.b--c.relay.test", "/", "relay.test", routing_mode::host);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code, core::errc::invalid_argument);
}

TEST(RelayRouting, PathModeIgnoresTheHostHeader) {
    auto by_path =
        route_request("llm--acme.relay.test", "/t/bob/web/x?y=1", "relay.test", routing_mode::path);
    ASSERT_TRUE(by_path) << by_path.error().message;
    EXPECT_EQ(by_path->tenant, "bob");
    EXPECT_EQ(by_path->target, "/x?y=1");
    EXPECT_FALSE(by_path->by_host);

    auto by_host = route_request("llm--acme.relay.test", "/v1", "relay.test", routing_mode::path);
    ASSERT_FALSE(by_host);
    EXPECT_EQ(by_host.error().code, core::errc::not_found);
    EXPECT_TRUE(contains(by_host.error().message, "/t/<tenant>/<name>/"));

    auto bad = route_request("", "/t/a_b/llm/", "", routing_mode::path);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code, core::errc::invalid_argument);
}

TEST(RelayRouting, BothModeTriesHostThenPath) {
    auto h =
        route_request("llm--acme.relay.test", "/t/bob/web/x", "relay.test", routing_mode::both);
    ASSERT_TRUE(h);
    EXPECT_EQ(h->tenant, "acme");
    EXPECT_TRUE(h->by_host);
    auto p = route_request("relay.test", "/t/bob/web/x", "relay.test", routing_mode::both);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->tenant, "bob");
    EXPECT_FALSE(p->by_host);
}

// ---------------------------------------------------------------- the URL handed out

class RelayPublicUrl : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() /
               fs::path("relay_routing_" + std::to_string(::getpid()) + "_" +
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(dir_);
        secret_ = (dir_ / "secret").string();
        std::ofstream(secret_) << "0123456789abcdef0123456789abcdef\n";
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::unique_ptr<relay_state> state_for(std::string domain, std::optional<routing_mode> routing,
                                           bool tls, std::uint16_t port) {
        auto config = dev_config("127.0.0.1:0", "127.0.0.1:0", secret_);
        EXPECT_TRUE(config) << config.error().message;
        config->domain = std::move(domain);
        config->routing = routing;
        auto verifier = token_verifier::load(verifier_options_for(*config));
        EXPECT_TRUE(verifier) << verifier.error().message;
        auto identity = ssh::server_identity::ephemeral();
        EXPECT_TRUE(identity) << identity.error().message;
        auto st = std::make_unique<relay_state>(io_, std::move(*config), std::move(*verifier),
                                                std::move(*identity));
        st->tls = tls;
        st->public_port = port;
        return st;
    }

    fs::path dir_;
    std::string secret_;
    asio::io_context io_;
};

TEST_F(RelayPublicUrl, HostRoutedWhenADomainIsSet) {
    EXPECT_EQ(state_for("relay.test", std::nullopt, true, 443)->public_url("acme", "llm"),
              "https://llm--acme.relay.test/");
    EXPECT_EQ(state_for("relay.test", std::nullopt, true, 8443)->public_url("acme", "llm"),
              "https://llm--acme.relay.test:8443/");
    EXPECT_EQ(
        state_for("relay.test", routing_mode::both, false, 8080)->public_url("acme", "{name}"),
        "http://{name}--acme.relay.test:8080/");
}

TEST_F(RelayPublicUrl, PathRoutedWithoutADomainOrUnderRoutingPath) {
    EXPECT_EQ(state_for("", std::nullopt, false, 8080)->public_url("acme", "llm"),
              "http://127.0.0.1:8080/t/acme/llm/");
    EXPECT_EQ(state_for("relay.test", routing_mode::path, true, 443)->public_url("acme", "web"),
              "https://relay.test/t/acme/web/");
}

// ---------------------------------------------------------------- Service-Worker-Allowed

TEST(ServiceWorkerAllowed, DroppedFromARebuiltResponseHead) {
    http_head h;
    h.status = 200;
    h.reason = "OK";
    h.fields = {{"Content-Type", "text/javascript"},
                {"service-worker-allowed", "/"},
                {"Content-Length", "10"}};
    EXPECT_EQ(drop_field(response_for_caller(h, "close", false), "Service-Worker-Allowed"),
              "HTTP/1.1 200 OK\r\nContent-Type: text/javascript\r\nContent-Length: 10\r\n"
              "Connection: close\r\n\r\n");
    // Interim heads too (103 Early Hints may carry any field).
    http_head hints;
    hints.status = 103;
    hints.reason = "Early Hints";
    hints.fields = {{"Service-Worker-Allowed", "/"}, {"Link", "</a.css>"}};
    EXPECT_EQ(drop_field(response_for_caller(hints, {}, false), "Service-Worker-Allowed"),
              "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n");
}

TEST(ServiceWorkerAllowed, FoldedContinuationLinesGoWithTheirField) {
    EXPECT_EQ(drop_field("HTTP/1.1 200 OK\r\nService-Worker-Allowed: /a\r\n /b\r\n\tc\r\nX: 1\r\n"
                         "Y: 2\r\n z\r\n\r\n",
                         "Service-Worker-Allowed"),
              "HTTP/1.1 200 OK\r\nX: 1\r\nY: 2\r\n z\r\n\r\n");
    // Only that exact field name: not a prefix of another.
    EXPECT_EQ(drop_field("HTTP/1.1 200 OK\r\nService-Worker-Allowed-X: 1\r\n\r\n",
                         "Service-Worker-Allowed"),
              "HTTP/1.1 200 OK\r\nService-Worker-Allowed-X: 1\r\n\r\n");
}

}  // namespace
}  // namespace tunnel::relay
