// Sharing end to end (docs/relay.md "Sharing"): a real `tunnel relay` with a
// shares state file and visitor tokens, a real `tunnel connect --access
// token` publishing acme's `web`, the share API called over raw HTTP on
// 127.0.0.1 with tenants' own tunnel tokens and through `tunnel share`.
#include <chrono>
#include <string>
#include <thread>
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
using json = nlohmann::json;

constexpr const char* visitor_secret = "share-test-visitor-secret-0123456789abcdefghij";

std::string trim(std::string s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
    return s;
}

json body_of(const http_reply& r) {
    auto j = json::parse(r.body, nullptr, false);
    return j.is_discarded() ? json::object() : j;
}

class RelayShare : public ::testing::Test {
  protected:
    void SetUp() override {
        auto d = temp_dir::create("tunnel-share");
        ASSERT_TRUE(d);
        dir.emplace(std::move(*d));
        ASSERT_TRUE(write_text_file(dir->file("visitor.secret"), visitor_secret, 0600));
        auto o = streaming_origin::start();
        ASSERT_TRUE(o) << o.error().message;
        origin = std::move(*o);
        start_relay();
        auto acme = relay->mint("acme", "web,api");
        auto bob = relay->mint("bob", "bob-*");
        auto carol = relay->mint("carol", "carol");
        ASSERT_TRUE(acme && bob && carol);
        acme_token = *acme;
        bob_token = *bob;
        carol_token = *carol;
        auto c = relay->connect(acme_token, {{"web", origin->port()}}, true, {"--access", "token"});
        ASSERT_TRUE(c) << c.error().message;
        client.emplace(std::move(*c));
        ASSERT_TRUE(relay->wait_published("acme", "web", 20s)) << relay->log();
    }

    void start_relay(const std::string& secret_of = {}) {
        relay_options o;
        o.audit_log = true;
        o.share_secret_of = secret_of;
        o.extra_yaml = fmt::format(
            "domain: relay.test\nvisitors:\n  secret_file: {}\nshares:\n  state_file: {}\n  "
            "use_audit_interval: 0s\n",
            dir->file("visitor.secret"), dir->file("shares.json"));
        auto r = relay_fixture::start(std::move(o));
        ASSERT_TRUE(r) << r.error().message;
        relay.emplace(std::move(*r));
    }

    // A request to the share API on the relay's own host.
    http_reply api(const std::string& method, const std::string& target, const std::string& token,
                   const std::string& body = {}, const std::string& extra = {}) {
        std::string req = fmt::format("{} {} HTTP/1.1\r\nHost: relay.test\r\n", method, target);
        if (!token.empty()) req += fmt::format("Authorization: Bearer {}\r\n", token);
        if (!body.empty() || method == "POST")
            req += fmt::format("Content-Type: application/json\r\nContent-Length: {}\r\n",
                               body.size());
        req += extra + "Connection: close\r\n\r\n" + body;
        auto r = http_request(relay->public_port(), req, 10s);
        EXPECT_TRUE(r) << r.error().message;
        return r ? *r : http_reply{};
    }

    http_reply grant(const std::string& to, const std::string& role,
                     const std::string& expires = "1h") {
        return api(
            "POST", "/v1/shares", acme_token,
            json{{"name", "web"}, {"to", to}, {"role", role}, {"expires_in", expires}}.dump());
    }

    // GET /headers on web--acme.relay.test with this bearer token.
    http_reply call_web(const std::string& token) {
        auto r = http_request(relay->public_port(),
                              fmt::format("GET /headers HTTP/1.1\r\nHost: web--acme.relay.test\r\n"
                                          "Authorization: Bearer {}\r\nConnection: close\r\n\r\n",
                                          token),
                              10s);
        EXPECT_TRUE(r) << r.error().message;
        return r ? *r : http_reply{};
    }

    std::string audit() const { return read_text_file(relay->audit_path()).value_or(""); }

    std::optional<temp_dir> dir;
    std::unique_ptr<streaming_origin> origin;
    std::optional<relay_fixture> relay;
    std::optional<relay_client> client;
    std::string acme_token, bob_token, carol_token;
};

TEST_F(RelayShare, AGrantLetsAnotherTenantInvokeUntilItIsRevoked) {
    auto before = call_web(bob_token);
    EXPECT_EQ(before.status, 401) << before.raw;
    const int origin_before = origin->requests();

    auto granted = grant("tenant:bob", "invoke");
    ASSERT_EQ(granted.status, 201) << granted.raw;
    const std::string id = body_of(granted).value("id", "");
    ASSERT_EQ(id.rfind("shr_", 0), 0u) << granted.body;

    auto shared = call_web(bob_token);
    EXPECT_EQ(shared.status, 200) << shared.raw;
    EXPECT_EQ(shared.body.find(bob_token), std::string::npos)
        << "the origin never sees the grantee's token: " << shared.body;
    EXPECT_EQ(origin->requests(), origin_before + 1);
    EXPECT_EQ(call_web(carol_token).status, 401) << "carol has no grant";

    // Bob can neither see nor revoke acme's grants.
    auto bob_list = api("GET", "/v1/shares", bob_token);
    EXPECT_EQ(bob_list.status, 200) << bob_list.raw;
    EXPECT_TRUE(body_of(bob_list)["shares"].empty()) << bob_list.body;
    auto bob_revoke = api("DELETE", "/v1/shares/" + id, bob_token);
    EXPECT_EQ(bob_revoke.status, 404) << bob_revoke.raw;
    EXPECT_EQ(call_web(bob_token).status, 200) << "bob's revoke changed nothing";

    auto listed = api("GET", "/v1/shares", acme_token);
    ASSERT_EQ(listed.status, 200);
    ASSERT_EQ(body_of(listed)["shares"].size(), 1u) << listed.body;
    EXPECT_EQ(body_of(listed)["shares"][0]["to"], "tenant:bob");

    auto revoked = api("DELETE", "/v1/shares/" + id, acme_token);
    EXPECT_EQ(revoked.status, 200) << revoked.raw;
    EXPECT_EQ(call_web(bob_token).status, 401) << "revoked: refused on the next request";

    const std::string log = audit();
    EXPECT_NE(log.find("\"share_granted\""), std::string::npos) << log;
    EXPECT_NE(log.find("\"share_used\""), std::string::npos) << log;
    EXPECT_NE(log.find("\"share_revoked\""), std::string::npos) << log;
    EXPECT_NE(log.find("\"share_refused\""), std::string::npos) << "bob's revoke attempt";
    auto verify = run_tunnel({"audit", "verify", relay->audit_path()});
    EXPECT_TRUE(verify.ok()) << verify.describe();
}

TEST_F(RelayShare, ViewShowsStatsButNeverInvokes) {
    ASSERT_EQ(grant("tenant:bob", "view").status, 201);
    EXPECT_EQ(call_web(bob_token).status, 401) << "view does not invoke";

    auto stats = api("GET", "/v1/shares/stats?tenant=acme&name=web", bob_token);
    ASSERT_EQ(stats.status, 200) << stats.raw;
    EXPECT_EQ(body_of(stats)["online"], true) << stats.body;
    EXPECT_EQ(body_of(stats)["access"], "token") << stats.body;
    EXPECT_TRUE(body_of(stats)["tunnel"].contains("requests")) << stats.body;

    auto carol = api("GET", "/v1/shares/stats?tenant=acme&name=web", carol_token);
    EXPECT_EQ(carol.status, 403) << carol.raw;
    auto owner = api("GET", "/v1/shares/stats?tenant=acme&name=web", acme_token);
    EXPECT_EQ(owner.status, 200) << "the owner sees its own stats: " << owner.raw;
}

TEST_F(RelayShare, AnAudienceGrantAdmitsItsVisitorTokensAndExpires) {
    auto minted =
        run_tunnel({"token", "--visitor", "--secret-file", dir->file("visitor.secret"), "--tenant",
                    "partner", "--allow", "anything", "--ttl", "1h", "--audience", "partners"});
    ASSERT_TRUE(minted.ok()) << minted.describe();
    const std::string visitor = trim(minted.out);
    EXPECT_EQ(call_web(visitor).status, 403) << "a visitor token for another tenant's service";

    // Expiries are whole seconds, rounded up: "1s" ends 1 to 2 s from now.
    ASSERT_EQ(grant("audience:partners", "invoke", "1s").status, 201);
    EXPECT_EQ(call_web(visitor).status, 200);
    std::this_thread::sleep_for(2100ms);
    EXPECT_NE(call_web(visitor).status, 200) << "expired: refused on the next request";
}

TEST_F(RelayShare, HostileRequestsGetAClear4xx) {
    auto check = [&](const http_reply& r, int status, const std::string& says) {
        EXPECT_EQ(r.status, status) << r.raw;
        EXPECT_NE(body_of(r).value("message", "").find(says), std::string::npos) << r.body;
    };
    check(api("POST", "/v1/shares", acme_token, "{not json"), 400, "JSON object");
    check(api("POST", "/v1/shares", acme_token,
              R"({"name":"web","to":"tenant:bob","role":"admin","expires_in":"1h"})"),
          400, "role \"admin\"");
    check(api("POST", "/v1/shares", acme_token,
              R"({"name":"db","to":"tenant:bob","role":"invoke","expires_in":"1h"})"),
          400, "does not allow that name");
    check(api("POST", "/v1/shares", bob_token,
              R"({"name":"web","to":"tenant:carol","role":"invoke","expires_in":"1h"})"),
          400, "cannot share \"web\"");
    check(api("POST", "/v1/shares", acme_token,
              R"({"name":"web","to":"tenant:bob","role":"invoke"})"),
          400, "expires_in");
    auto big = http_request(relay->public_port(),
                            fmt::format("POST /v1/shares HTTP/1.1\r\nHost: relay.test\r\n"
                                        "Authorization: Bearer {}\r\nContent-Length: 1000000\r\n"
                                        "Connection: close\r\n\r\n{{",
                                        acme_token),
                            10s);
    ASSERT_TRUE(big);
    check(*big, 413, "at most");
    check(api("GET", "/v1/shares", ""), 401, "Authorization: Bearer");
    check(api("GET", "/v1/shares", "a.b.c"), 401, "refused");
    check(api("DELETE", "/v1/shares/../../etc", acme_token), 400, "not a share id");
    check(api("PUT", "/v1/shares", acme_token), 405, "POST /v1/shares");
    EXPECT_EQ(call_web(bob_token).status, 401) << "nothing was granted";
}

TEST_F(RelayShare, TheCliGrantsListsAndRevokesAndGrantsSurviveARestart) {
    const std::string url = fmt::format("http://127.0.0.1:{}", relay->public_port());
    const std::string acme_file = dir->file("acme.token");  // outlives the relay
    ASSERT_TRUE(write_text_file(acme_file, acme_token, 0600));
    auto granted =
        run_tunnel({"share", "grant", "web", "--to", "tenant:bob", "--role", "invoke", "--expires",
                    "2h", "--relay", url, "--token-file", acme_file, "--json"});
    ASSERT_TRUE(granted.ok()) << granted.describe();
    const std::string id = json::parse(granted.out).value("id", "");
    ASSERT_FALSE(id.empty()) << granted.out;

    auto bad = run_tunnel({"share", "grant", "web", "--to", "tenant:bob", "--role", "owner",
                           "--expires", "2h", "--relay", url, "--token-file", acme_file});
    EXPECT_EQ(bad.exit_code, 2) << bad.describe();
    EXPECT_NE(bad.err.find("role \"owner\""), std::string::npos) << bad.err;

    // A new relay on the same state file (and token secret) knows the grant.
    const std::string secret_copy = dir->file("jwt.secret");
    ASSERT_TRUE(
        write_text_file(secret_copy, read_text_file(relay->secret_path()).value_or(""), 0600));
    client->process().terminate();
    client.reset();
    relay->process().terminate();
    relay.reset();
    start_relay(secret_copy);
    const std::string url2 = fmt::format("http://127.0.0.1:{}", relay->public_port());
    auto listed = run_tunnel({"share", "list", "--relay", url2, "--token-file", acme_file});
    ASSERT_TRUE(listed.ok()) << listed.describe();
    EXPECT_NE(listed.out.find(id), std::string::npos) << listed.out;
    EXPECT_NE(listed.out.find("web -> tenant:bob (invoke)"), std::string::npos) << listed.out;

    auto revoked = run_tunnel({"share", "revoke", id, "--relay", url2, "--token-file", acme_file});
    ASSERT_TRUE(revoked.ok()) << revoked.describe();
    auto again = run_tunnel({"share", "revoke", id, "--relay", url2, "--token-file", acme_file});
    EXPECT_FALSE(again.ok());
    EXPECT_NE(again.err.find("no grant"), std::string::npos) << again.err;
    auto empty = run_tunnel({"share", "list", "--relay", url2, "--token-file", acme_file});
    EXPECT_NE(empty.out.find("no live grants"), std::string::npos) << empty.describe();
}

}  // namespace
}  // namespace tunnel::test
