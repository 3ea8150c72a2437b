// Visitor access control end to end (docs/relay.md "Visitor access"): a real
// `tunnel relay` with a visitors: section, a real `tunnel connect --access
// ...` publishing a streaming origin, callers over raw HTTP on 127.0.0.1.
// The relay decides before any channel opens (the origin's request count
// proves it) and strips the visitor's credential from what the origin sees
// (GET /headers echoes the head the origin received).
#include <crypt.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

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

constexpr const char* visitor_secret = "visitor-access-test-secret-0123456789abcdefghij";

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string trim(std::string s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
    return s;
}

std::string error_code_of(const http_reply& r) {
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    return j.is_object() ? j.value("error", "") : "";
}

// A yescrypt hash made by libcrypt (what `mkpasswd -m yescrypt` prints).
std::string yescrypt(const std::string& password) {
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    if (!::crypt_gensalt_rn("$y$", 0, nullptr, 0, setting, sizeof setting)) return {};
    auto data = std::make_unique<crypt_data>();
    const char* out = ::crypt_rn(password.c_str(), setting, data.get(), sizeof *data);
    return out && out[0] == '$' ? std::string(out) : std::string();
}

class RelayVisitorAccess : public ::testing::Test {
  protected:
    void SetUp() override {
        auto d = temp_dir::create("tunnel-visitor-access");
        ASSERT_TRUE(d);
        dir.emplace(std::move(*d));
        ASSERT_TRUE(write_text_file(dir->file("visitor.secret"), visitor_secret, 0600));
        auto o = streaming_origin::start();
        ASSERT_TRUE(o) << o.error().message;
        origin = std::move(*o);
    }
    void TearDown() override {
        for (auto& c : clients) c.terminate();
    }

    // A relay with host routing under relay.test and visitor tokens.
    void start_relay(const std::string& names_yaml = {}) {
        relay_options o;
        o.audit_log = true;
        o.extra_yaml = fmt::format("domain: relay.test\nvisitors:\n  secret_file: {}\n{}",
                                   dir->file("visitor.secret"), names_yaml);
        auto r = relay_fixture::start(std::move(o));
        ASSERT_TRUE(r) << r.error().message;
        relay.emplace(std::move(*r));
    }

    // tunnel connect --expose NAME=origin [args...], waiting for NAME to be published.
    void connect(const std::string& name, std::vector<std::string> args) {
        auto tok = relay->mint("acme", "web,api");
        ASSERT_TRUE(tok) << tok.error().message;
        const std::string id = std::to_string(clients.size());
        std::vector<std::string> argv{"connect",
                                      relay->attach_url(),
                                      "--token-file",
                                      relay->token_file(*tok),
                                      "--json",
                                      "--expose",
                                      fmt::format("{}=127.0.0.1:{}", name, origin->port())};
        argv.insert(argv.end(), args.begin(), args.end());
        auto c = spawn_tunnel(argv, dir->path(), dir->file("c" + id + ".out"),
                              dir->file("c" + id + ".err"));
        ASSERT_TRUE(c) << c.error().message;
        clients.push_back(std::move(*c));
        ASSERT_TRUE(relay->wait_published("acme", name, 20s))
            << read_text_file(dir->file("c" + id + ".err")).value_or("") << relay->log();
    }

    // GET on the name's own host (web--acme.relay.test), Connection: close.
    http_reply get(const std::string& target, const std::string& fields = {},
                   const std::string& name = "web") {
        auto r = http_request(relay->public_port(),
                              fmt::format("GET {} HTTP/1.1\r\nHost: {}--acme.relay.test\r\n{}"
                                          "Connection: close\r\n\r\n",
                                          target, name, fields),
                              10s);
        EXPECT_TRUE(r) << r.error().message;
        return r ? *r : http_reply{};
    }

    std::string visitor_token(const std::string& allow, const std::string& ttl = "1h") {
        auto r = run_tunnel({"token", "--visitor", "--secret-file", dir->file("visitor.secret"),
                             "--tenant", "acme", "--allow", allow, "--ttl", ttl});
        EXPECT_TRUE(r.ok()) << r.describe();
        return trim(r.out);
    }

    std::optional<temp_dir> dir;
    std::unique_ptr<streaming_origin> origin;
    std::optional<relay_fixture> relay;
    std::vector<child_process> clients;
};

TEST_F(RelayVisitorAccess, TokenModeNeedsAVisitorTokenAndTheOriginNeverSeesIt) {
    start_relay();
    connect("web", {"--access", "token"});

    auto anonymous = get("/headers");
    EXPECT_EQ(anonymous.status, 401) << anonymous.raw;
    EXPECT_NE(lower(anonymous.head).find("www-authenticate: bearer"), std::string::npos)
        << anonymous.head;
    EXPECT_EQ(error_code_of(anonymous), "no_credential") << anonymous.body;
    EXPECT_EQ(origin->requests(), 0) << "refused before a channel opened";

    const std::string token = visitor_token("web");
    auto ok = get("/headers", fmt::format("Authorization: Bearer {}\r\n", token));
    EXPECT_EQ(ok.status, 200) << ok.raw;
    EXPECT_EQ(lower(ok.body).find("authorization"), std::string::npos) << ok.body;
    EXPECT_EQ(ok.body.find(token), std::string::npos) << ok.body;
    EXPECT_EQ(origin->requests(), 1);

    // A token for another service, an expired one, a tunnel token: refused.
    auto other = get("/headers", fmt::format("Authorization: Bearer {}\r\n", visitor_token("api")));
    EXPECT_EQ(other.status, 403) << other.raw;
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    const std::string expired =
        relay->craft(fmt::format(R"({{"typ":"tunnel-visitor","aud":"tunnel-visitor","sub":"acme",)"
                                 R"("svc":["web"],"iat":{},"exp":{},"jti":"old"}})",
                                 now - 7200, now - 3600),
                     false, visitor_secret);
    auto late = get("/headers", fmt::format("Authorization: Bearer {}\r\n", expired));
    EXPECT_EQ(late.status, 401) << late.raw;
    EXPECT_EQ(error_code_of(late), "expired") << late.body;
    auto tunnel_token = relay->mint("acme", "web");
    ASSERT_TRUE(tunnel_token);
    auto wrong_kind =
        get("/headers", fmt::format("Authorization: Bearer {}\r\n", trim(*tunnel_token)));
    EXPECT_EQ(wrong_kind.status, 401) << wrong_kind.raw;
    EXPECT_EQ(origin->requests(), 1) << "no refused request reached the origin";

    // Refusals are counted per tenant and reason, and audited.
    const auto metrics = relay->admin_get("/metrics");
    EXPECT_NE(metrics.find("relay_visitor_refusals_total{"), std::string::npos) << metrics;
    EXPECT_NE(metrics.find("reason=\"no_credential\""), std::string::npos) << metrics;
    EXPECT_NE(metrics.find("reason=\"wrong_service\""), std::string::npos) << metrics;
    const auto audit = read_text_file(relay->audit_path()).value_or("");
    EXPECT_NE(audit.find("visitor_refused"), std::string::npos) << audit;
    EXPECT_NE(audit.find("\"access\":\"token\""), std::string::npos) << audit;
    EXPECT_EQ(audit.find(token), std::string::npos) << "never a credential in the audit log";
}

TEST_F(RelayVisitorAccess, LoginSetsAHostOnlyCookieThatWorksAndIsStripped) {
    start_relay();
    connect("web", {"--access", "token"});
    const std::string token = visitor_token("web");
    auto login = get(fmt::format("/_tunnel/login?token={}", token));
    EXPECT_EQ(login.status, 303) << login.raw;
    const auto head = lower(login.head);
    EXPECT_NE(head.find("location: /\r\n"), std::string::npos) << login.head;
    const auto at = login.head.find("tunnel_visitor=");
    ASSERT_NE(at, std::string::npos) << login.head;
    const auto line_end = login.head.find("\r\n", at);
    const std::string cookie_line = login.head.substr(at, line_end - at);
    EXPECT_NE(cookie_line.find("HttpOnly"), std::string::npos) << cookie_line;
    EXPECT_EQ(lower(cookie_line).find("domain="), std::string::npos) << "host-only";
    const std::string cookie = cookie_line.substr(0, cookie_line.find(';'));
    EXPECT_EQ(origin->requests(), 0) << "the login exchange is the relay's own";

    auto ok = get("/headers", fmt::format("Cookie: theme=dark; {}\r\n", cookie));
    EXPECT_EQ(ok.status, 200) << ok.raw;
    EXPECT_EQ(ok.body.find("tunnel_visitor"), std::string::npos) << ok.body;
    EXPECT_EQ(ok.body.find(token), std::string::npos) << ok.body;
    EXPECT_NE(ok.body.find("theme=dark"), std::string::npos) << "other cookies pass";
    EXPECT_EQ(origin->requests(), 1);
}

TEST_F(RelayVisitorAccess, BasicModeChecksAYescryptHtpasswdList) {
    const std::string hash = yescrypt("s3cret");
    ASSERT_FALSE(hash.empty());
    ASSERT_TRUE(write_text_file(dir->file("web.htpasswd"), "alice:" + hash + "\n", 0600));
    start_relay();
    connect("web", {"--access", "basic", "--htpasswd", dir->file("web.htpasswd")});

    auto none = get("/headers");
    EXPECT_EQ(none.status, 401) << none.raw;
    EXPECT_NE(lower(none.head).find("www-authenticate: basic"), std::string::npos) << none.head;
    auto wrong = get("/headers", "Authorization: Basic YWxpY2U6d3Jvbmc=\r\n");  // alice:wrong
    EXPECT_EQ(wrong.status, 401) << wrong.raw;
    EXPECT_EQ(origin->requests(), 0);
    auto right = get("/headers", "Authorization: Basic YWxpY2U6czNjcmV0\r\n");  // alice:s3cret
    EXPECT_EQ(right.status, 200) << right.raw;
    EXPECT_EQ(lower(right.body).find("authorization"), std::string::npos) << right.body;
    EXPECT_EQ(origin->requests(), 1);
}

TEST_F(RelayVisitorAccess, WrongCredentialsFromOneAddressAreThrottled) {
    // limits.visitor_failures_per_ip: password guessing gets three tries per
    // window, then 429 unchecked (even the right password), no hash, no origin.
    const std::string hash = yescrypt("s3cret");
    ASSERT_FALSE(hash.empty());
    ASSERT_TRUE(write_text_file(dir->file("web.htpasswd"), "alice:" + hash + "\n", 0600));
    start_relay("limits:\n  visitor_failures_per_ip: 3\n  visitor_failure_window: 60s\n");
    connect("web", {"--access", "basic", "--htpasswd", dir->file("web.htpasswd")});
    connect("api", {});

    auto none = get("/headers");  // no credential: a browser's first request, not a guess
    EXPECT_EQ(none.status, 401) << none.raw;
    for (int i = 0; i < 3; ++i) {
        auto wrong = get("/headers", "Authorization: Basic YWxpY2U6d3Jvbmc=\r\n");  // alice:wrong
        EXPECT_EQ(wrong.status, 401) << i << ": " << wrong.raw;
        EXPECT_EQ(error_code_of(wrong), "bad_credential") << wrong.body;
    }
    auto right = get("/headers", "Authorization: Basic YWxpY2U6czNjcmV0\r\n");  // alice:s3cret
    EXPECT_EQ(right.status, 429) << right.raw;
    EXPECT_EQ(error_code_of(right), "too_many_failures") << right.body;
    EXPECT_NE(lower(right.head).find("retry-after: "), std::string::npos) << right.head;
    EXPECT_EQ(origin->requests(), 0);

    // A public name is not behind the throttle.
    auto open = get("/hello", {}, "api");
    EXPECT_EQ(open.status, 200) << open.raw;
    const auto metrics = relay->admin_get("/metrics");
    EXPECT_NE(metrics.find("reason=\"throttled\""), std::string::npos) << metrics;
}

TEST_F(RelayVisitorAccess, IpModeLetsInOnlyListedNetworks) {
    start_relay();
    connect("web", {"--access", "ip", "--allow-ip", "127.0.0.1/32"});
    connect("api", {"--access", "ip", "--allow-ip", "10.0.0.0/8"});
    auto in = get("/hello");
    EXPECT_EQ(in.status, 200) << in.raw;
    auto out = get("/hello", {}, "api");
    EXPECT_EQ(out.status, 403) << out.raw;
    EXPECT_EQ(error_code_of(out), "ip_not_allowed") << out.body;
    EXPECT_EQ(origin->requests(), 1);
}

TEST_F(RelayVisitorAccess, PublicNamesAreUnchanged) {
    start_relay();
    connect("web", {});
    auto r = get("/headers", "Authorization: Bearer not-for-the-relay\r\n");
    EXPECT_EQ(r.status, 200) << r.raw;
    EXPECT_NE(r.body.find("not-for-the-relay"), std::string::npos)
        << "a public name's own Authorization reaches its origin";
}

TEST_F(RelayVisitorAccess, TheOperatorsConfigBeatsThePublisher) {
    start_relay("  names:\n    acme/web: {access: token}\n");
    connect("web", {});  // asks for nothing: the relay's entry applies
    auto anonymous = get("/hello");
    EXPECT_EQ(anonymous.status, 401) << anonymous.raw;
    auto ok = get("/hello", fmt::format("Authorization: Bearer {}\r\n", visitor_token("web")));
    EXPECT_EQ(ok.status, 200) << ok.raw;
    EXPECT_EQ(origin->requests(), 1);
}

}  // namespace
}  // namespace tunnel::test
