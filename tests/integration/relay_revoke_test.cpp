// Token revocation against a real `tunnel relay` (docs/relay.md "Revoking a
// token"): `tunnel token --revoke` and POST /api/v1/tokens/revoke close the
// tunnel using the token within a second, its re-attach is refused, a revoked
// visitor token is refused, and revocations survive a restart.
#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/relay_fixture.hpp"
#include "support/tcp_servers.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

const std::string admin_token = "admin-token-0123456789abcdef";
constexpr const char* visitor_secret = "revoke-test-visitor-secret-0123456789abcdef";

std::string get(const std::string& path, const std::string& extra = {}) {
    return fmt::format("GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\n{}Connection: close\r\n\r\n", path,
                       extra);
}

core::result<http_reply> admin_post(const relay_fixture& relay, const std::string& path,
                                    const std::string& body, const std::string& token) {
    const std::string auth =
        token.empty() ? "" : fmt::format("Authorization: Bearer {}\r\n", token);
    return http_request(relay.admin_port(),
                        fmt::format("POST {} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n{}Content-Type: "
                                    "application/json\r\nContent-Length: {}\r\nConnection: "
                                    "close\r\n\r\n{}",
                                    path, relay.admin_port(), auth, body.size(), body),
                        5s);
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string admin_url(const relay_fixture& relay) {
    return fmt::format("http://127.0.0.1:{}", relay.admin_port());
}

class RelayRevoke : public ::testing::Test {
  protected:
    void SetUp() override {
        auto d = temp_dir::create("relay-revoke");
        ASSERT_TRUE(d);
        dir.emplace(std::move(*d));
        ASSERT_TRUE(write_text_file(dir->file("admin.token"), admin_token + "\n", 0600));
        ASSERT_TRUE(write_text_file(dir->file("visitor.secret"), visitor_secret, 0600));
        auto origin_or = http_origin::start("ok");
        ASSERT_TRUE(origin_or) << origin_or.error().message;
        origin = std::move(*origin_or);
    }

    relay_options options(const std::string& share_secret_of = {}) const {
        relay_options o;
        o.admin_token = admin_token;
        o.audit_log = true;
        o.share_secret_of = share_secret_of;
        o.extra_yaml = fmt::format(
            "limits:\n  tenant_rps: 1000\n  route_rps: 1000\n  route_burst: 1000\n"
            "revocation:\n  state_file: {}\n"
            "visitors:\n  secret_file: {}\n  names:\n    acme/private: {{access: token}}\n",
            dir->file("revoked.db"), dir->file("visitor.secret"));
        return o;
    }

    run_result revoke(const relay_fixture& relay, const std::string& jti) const {
        return run_tunnel({"token", "--revoke", jti, "--relay", admin_url(relay),
                           "--admin-token-file", dir->file("admin.token"), "--reason", "test"});
    }

    std::optional<temp_dir> dir;
    std::unique_ptr<http_origin> origin;
};

TEST_F(RelayRevoke, RevokeClosesTheTunnelWithinASecondAndItsReattachIsRefused) {
    auto relay = relay_fixture::start(options());
    ASSERT_TRUE(relay) << relay.error().message;
    auto token = relay->mint("acme", "web");
    ASSERT_TRUE(token) << token.error().message;
    const std::string jti = jti_of(*token);
    ASSERT_FALSE(jti.empty()) << "minted tunnel tokens carry a jti";
    // Another token of the same tenant is not touched by the revocation.
    auto other = relay->mint("acme", "other");
    ASSERT_TRUE(other);
    auto c = relay->connect(*token, {{"web", origin->port()}});
    ASSERT_TRUE(c) << c.error().message;
    auto c2 = relay->connect(*other, {{"other", origin->port()}});
    ASSERT_TRUE(c2) << c2.error().message;
    ASSERT_TRUE(relay->wait_published("acme", "web", 10s)) << c->log();
    auto r = http_request(relay->public_port(), get("/t/acme/web/"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->raw;

    auto out = revoke(*relay, jti);
    // The CLI returns once the relay answered the POST: from there, at most 1 s.
    const auto start = steady::now();
    ASSERT_TRUE(out.ok()) << out.describe() << relay->log();
    EXPECT_NE(out.out.find("revoked " + jti), std::string::npos) << out.out;
    EXPECT_NE(out.out.find("1 attached tunnel(s) closed"), std::string::npos) << out.out;
    ASSERT_TRUE(relay->wait_published("acme", "web", 1s, false))
        << "the tunnel is still attached 1 s after the revocation\n"
        << relay->log();
    RecordProperty(
        "closed_ms",
        static_cast<int>(
            std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start).count()));
    // Its names were released, not held for a lease: 404/503, never the origin.
    r = http_request(relay->public_port(), get("/t/acme/web/"));
    ASSERT_TRUE(r);
    EXPECT_NE(r->status, 200) << r->raw;
    // The client tries again and is refused with the reason.
    const auto deadline = steady::now() + 10s;
    while (c->log().find("token_revoked") == std::string::npos && steady::now() < deadline)
        std::this_thread::sleep_for(50ms);
    EXPECT_NE(c->log().find("token_revoked"), std::string::npos) << c->log();
    EXPECT_NE(c->log().find("was revoked"), std::string::npos) << c->log();
    EXPECT_FALSE(relay->wait_published("acme", "web", 500ms)) << c->log();
    // The other token's tunnel serves on.
    r = http_request(relay->public_port(), get("/t/acme/other/"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->raw;

    // Listed, audited (the jti, never the token), and a second revoke says so.
    auto list = nlohmann::json::parse(relay->admin_get("/api/v1/tokens/revoked"), nullptr, false);
    ASSERT_TRUE(list.is_object());
    ASSERT_EQ(list["revoked"].size(), 1u) << list.dump();
    EXPECT_EQ(list["revoked"][0]["jti"], jti);
    const auto audit = read_file(relay->audit_path());
    EXPECT_NE(audit.find("\"token_revoked\""), std::string::npos) << audit;
    EXPECT_NE(audit.find("\"tunnel_revoked\""), std::string::npos) << audit;
    EXPECT_EQ(audit.find(*token), std::string::npos);
    EXPECT_EQ(relay->log().find(*token), std::string::npos);
    auto again = revoke(*relay, jti);
    EXPECT_TRUE(again.ok()) << again.describe();
    EXPECT_NE(again.out.find("already revoked"), std::string::npos) << again.out;
}

TEST_F(RelayRevoke, ARevokedVisitorTokenIsRefused) {
    auto relay = relay_fixture::start(options());
    ASSERT_TRUE(relay) << relay.error().message;
    auto token = relay->mint("acme", "private");
    ASSERT_TRUE(token);
    auto c = relay->connect(*token, {{"private", origin->port()}});
    ASSERT_TRUE(c) << c.error().message;
    ASSERT_TRUE(relay->wait_published("acme", "private", 10s)) << c->log();
    auto visitor = run_tunnel({"token", "--visitor", "--secret-file", dir->file("visitor.secret"),
                               "--tenant", "acme", "--allow", "private", "--ttl", "1h"});
    ASSERT_TRUE(visitor.ok()) << visitor.describe();
    std::string vt = visitor.out;
    while (!vt.empty() && vt.back() == '\n') vt.pop_back();
    const std::string bearer = fmt::format("Authorization: Bearer {}\r\n", vt);
    auto r = http_request(relay->public_port(), get("/t/acme/private/", bearer));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->raw;

    auto posted = admin_post(*relay, "/api/v1/tokens/revoke",
                             nlohmann::json{{"jti", jti_of(vt)}}.dump(), admin_token);
    ASSERT_TRUE(posted);
    ASSERT_EQ(posted->status, 200) << posted->raw;
    r = http_request(relay->public_port(), get("/t/acme/private/", bearer));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401) << r->raw;
    EXPECT_NE(r->raw.find("token_revoked"), std::string::npos) << r->raw;
    // A fresh visitor token still works: only that jti is refused.
    auto fresh = run_tunnel({"token", "--visitor", "--secret-file", dir->file("visitor.secret"),
                             "--tenant", "acme", "--allow", "private", "--ttl", "1h"});
    ASSERT_TRUE(fresh.ok());
    std::string ft = fresh.out;
    while (!ft.empty() && ft.back() == '\n') ft.pop_back();
    r = http_request(relay->public_port(),
                     get("/t/acme/private/", fmt::format("Authorization: Bearer {}\r\n", ft)));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->raw;
}

TEST_F(RelayRevoke, RevocationsSurviveARestart) {
    auto first = relay_fixture::start(options());
    ASSERT_TRUE(first) << first.error().message;
    auto token = first->mint("acme", "web");
    ASSERT_TRUE(token);
    auto out = revoke(*first, jti_of(*token));
    ASSERT_TRUE(out.ok()) << out.describe();
    first->process().terminate();

    auto second = relay_fixture::start(options(first->secret_path()));
    ASSERT_TRUE(second) << second.error().message;
    auto list = nlohmann::json::parse(second->admin_get("/api/v1/tokens/revoked"), nullptr, false);
    ASSERT_TRUE(list.is_object());
    ASSERT_EQ(list["revoked"].size(), 1u) << list.dump();
    EXPECT_EQ(list["revoked"][0]["jti"], jti_of(*token));
    auto c = second->connect(*token, {{"web", origin->port()}}, false);
    ASSERT_TRUE(c);
    const auto deadline = steady::now() + 10s;
    while (c->log().find("token_revoked") == std::string::npos && steady::now() < deadline)
        std::this_thread::sleep_for(50ms);
    EXPECT_NE(c->log().find("token_revoked"), std::string::npos) << c->log();
    EXPECT_FALSE(second->wait_published("acme", "web", 300ms));
}

TEST_F(RelayRevoke, BadRevokeInputsAreRefusedWithMessages) {
    auto relay = relay_fixture::start(options());
    ASSERT_TRUE(relay) << relay.error().message;
    struct bad_case {
        std::vector<std::string> args;
        std::string message;
    };
    const std::string url = admin_url(*relay);
    const std::string tf = dir->file("admin.token");
    const std::vector<bad_case> cases{
        {{"token", "--revoke", "a b", "--relay", url, "--admin-token-file", tf}, "without spaces"},
        {{"token", "--revoke", std::string(65, 'x'), "--relay", url, "--admin-token-file", tf},
         "at most 64"},
        {{"token", "--revoke", "abc"}, "--revoke needs --relay"},
        {{"token", "--revoke", "abc", "--relay", "https://127.0.0.1:1"}, "plain HTTP"},
        {{"token", "--revoke", "abc", "--relay", url, "--tenant", "acme"},
         "--tenant is for minting"},
        {{"token", "--revoke", "abc", "--relay", url}, "--admin-token-file"},
        {{"token", "--relay", url}, "go with --revoke"},
        {{"token", "--tenant", "acme"}, "--secret-file, --allow, --ttl are required"},
    };
    for (const auto& c : cases) {
        auto r = run_tunnel(c.args);
        EXPECT_FALSE(r.ok()) << fmt::format("{}", fmt::join(c.args, " "));
        EXPECT_NE(r.err.find(c.message), std::string::npos)
            << fmt::format("{}", fmt::join(c.args, " ")) << "\n"
            << r.err;
    }
    // The API itself: no token, bad JSON, no jti, an expiry in the past.
    auto no_auth = admin_post(*relay, "/api/v1/tokens/revoke", R"({"jti":"abc"})", "");
    ASSERT_TRUE(no_auth);
    EXPECT_EQ(no_auth->status, 401);
    for (const auto& [body, code] : std::vector<std::pair<std::string, std::string>>{
             {"not json", "bad_request"},
             {R"({"id":"abc"})", "bad_request"},
             {R"({"jti":""})", "bad_jti"},
             {R"({"jti":"abc","exp":1})", "already_expired"}}) {
        auto r = admin_post(*relay, "/api/v1/tokens/revoke", body, admin_token);
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 400) << body << "\n" << r->raw;
        EXPECT_NE(r->raw.find(code), std::string::npos) << body << "\n" << r->raw;
    }
    auto list = nlohmann::json::parse(relay->admin_get("/api/v1/tokens/revoked"), nullptr, false);
    ASSERT_TRUE(list.is_object());
    EXPECT_TRUE(list["revoked"].empty()) << list.dump();
}

}  // namespace
}  // namespace tunnel::test
