// Sharing (share_grant.hpp, share_store.hpp): grant requests validated with
// messages that say how to fix them, the store's tenant isolation, limits,
// expiry, persistence (atomic state file) and sampled use records; visitor
// tokens carrying audiences.
#include "relay/share_grant.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "relay/share_store.hpp"
#include "relay/visitor_token.hpp"

namespace tunnel::relay {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using sys = std::chrono::system_clock;

const sys::time_point now = sys::time_point(std::chrono::seconds(1'800'000'000));

tenant_policy owner(const std::string& tenant = "acme") {
    tenant_policy p;
    p.tenant = tenant;
    p.allow = {"llm", "web-*"};
    return p;
}

core::result<share_request> parse(const std::string& body, share_limits limits = {}) {
    return parse_share_request(body, owner(), limits, now);
}

std::string message_of(const core::result<share_request>& r) {
    return r ? std::string("(accepted)") : r.error().message;
}

TEST(ShareRequest, AcceptsAWellFormedGrant) {
    auto r = parse(R"({"name":"LLM","to":"tenant:Bob","role":"invoke","expires_in":"24h"})");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->name, "llm");
    EXPECT_EQ(r->grantee.to_string(), "tenant:bob");
    EXPECT_EQ(r->role, share_role::invoke);
    EXPECT_EQ(r->expires_at, now + 24h);

    auto at =
        parse(R"({"name":"web-a","to":"audience:partners","role":"view","expires_at":1800000600})");
    ASSERT_TRUE(at) << at.error().message;
    EXPECT_EQ(at->grantee.type, share_grantee::kind::audience);
    EXPECT_EQ(at->role, share_role::view);
    EXPECT_EQ(at->expires_at, now + 600s);
}

TEST(ShareRequest, RefusesHostileInputWithAMessageThatSaysWhatToWrite) {
    struct bad {
        std::string body;
        std::string says;
    };
    const std::vector<bad> cases = {
        {"{not json", "JSON object"},
        {"[1,2]", "JSON object"},
        {R"({"name":"llm","to":"tenant:bob","role":"invoke","expires_in":"1h","admin":true})",
         "unknown key \"admin\""},
        {R"({"to":"tenant:bob","role":"invoke","expires_in":"1h"})", "\"name\" is required"},
        {R"({"name":7,"to":"tenant:bob","role":"invoke","expires_in":"1h"})",
         "\"name\" is required"},
        {R"({"name":"db","to":"tenant:bob","role":"invoke","expires_in":"1h"})",
         "does not allow that name"},
        {R"({"name":"llm","to":"tenant:acme","role":"invoke","expires_in":"1h"})", "owns llm"},
        {R"({"name":"llm","to":"bob","role":"invoke","expires_in":"1h"})", "tenant:<tenant>"},
        {R"({"name":"llm","to":"tenant:b_b","role":"invoke","expires_in":"1h"})", "grantee"},
        {R"({"name":"llm","to":"tenant:bob","role":"admin","expires_in":"1h"})",
         "role \"admin\" is not one of invoke"},
        {R"({"name":"llm","to":"tenant:bob","role":"invoke"})", "exactly one of \"expires_in\""},
        {R"({"name":"llm","to":"tenant:bob","role":"invoke","expires_in":"1h","expires_at":1})",
         "exactly one"},
        {R"({"name":"llm","to":"tenant:bob","role":"invoke","expires_in":"10000h"})",
         "at most 720h"},
        {R"({"name":"llm","to":"tenant:bob","role":"invoke","expires_in":"5x"})", "expires_in"},
        {R"({"name":"llm","to":"tenant:bob","role":"invoke","expires_at":1000})", "expire at once"},
        {R"({"name":"llm","to":"tenant:bob","role":"invoke","expires_at":"tomorrow"})",
         "whole unix seconds"},
        {std::string(5000, ' '), "at most 4096"},
    };
    for (const auto& c : cases) {
        auto r = parse(c.body);
        EXPECT_FALSE(r) << c.body;
        EXPECT_NE(message_of(r).find(c.says), std::string::npos)
            << c.body.substr(0, 80) << " -> " << message_of(r);
    }
}

TEST(ShareGrant, SurvivesTheStateFileRoundTrip) {
    share_grant g;
    g.id = "shr_0123456789abcdef0123";
    g.tenant = "acme";
    g.name = "llm";
    g.grantee = {share_grantee::kind::audience, "partners"};
    g.role = share_role::view;
    g.created_at = now;
    g.expires_at = now + 1h;
    g.created_by = "tenant:acme";
    auto back = parse_shares_file(serialize_shares({g}), "test");
    ASSERT_TRUE(back) << back.error().message;
    ASSERT_EQ(back->size(), 1u);
    EXPECT_EQ((*back)[0].id, g.id);
    EXPECT_EQ((*back)[0].grantee, g.grantee);
    EXPECT_EQ((*back)[0].role, g.role);
    EXPECT_EQ((*back)[0].expires_at, g.expires_at);
    EXPECT_FALSE(parse_shares_file("{\"version\":2,\"shares\":[]}", "f"));
    EXPECT_FALSE(parse_shares_file(R"({"version":1,"shares":[{"id":"x"}]})", "f"));
    EXPECT_TRUE(valid_share_id(*new_share_id()));
    EXPECT_FALSE(valid_share_id("shr_../../etc/passwd"));
}

class ShareStore : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() /
               fs::path("share_store_" + std::to_string(::getpid()) + "_" +
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }

    static share_request request(const std::string& name, const std::string& to,
                                 share_role role = share_role::invoke,
                                 std::chrono::seconds ttl = 1h) {
        share_request r;
        r.name = name;
        r.grantee = *parse_share_grantee(to);
        r.role = role;
        r.expires_at = now + ttl;
        return r;
    }
    fs::path dir_;
};

TEST_F(ShareStore, TenantsSeeAndRevokeOnlyTheirOwnGrants) {
    auto store = share_store::open({}, now);
    ASSERT_TRUE(store);
    auto a = (*store)->grant(request("llm", "tenant:bob"), "acme", now);
    ASSERT_TRUE(a) << a.error().message;
    auto b = (*store)->grant(request("api", "tenant:acme"), "bob", now);
    ASSERT_TRUE(b);
    EXPECT_EQ((*store)->list("acme", now).size(), 1u);
    EXPECT_EQ((*store)->list("bob", now).front().id, b->id);

    auto stolen = (*store)->revoke("bob", a->id, now);
    ASSERT_FALSE(stolen);
    EXPECT_EQ(stolen.error().code, core::errc::not_found);
    EXPECT_EQ((*store)->list("acme", now).size(), 1u) << "bob's revoke changed nothing";
    ASSERT_TRUE((*store)->revoke("acme", a->id, now));
    EXPECT_TRUE((*store)->list("acme", now).empty());
}

TEST_F(ShareStore, FindsOnlyLiveGrantsOfTheRoleForTheGrantee) {
    auto store = *share_store::open({}, now);
    ASSERT_TRUE(store->grant(request("llm", "tenant:bob", share_role::view), "acme", now));
    ASSERT_TRUE(
        store->grant(request("llm", "audience:partners", share_role::invoke, 60s), "acme", now));
    auto snap = store->snapshot();
    const std::vector<share_grantee> bob{{share_grantee::kind::tenant, "bob"}};
    const std::vector<share_grantee> partners{{share_grantee::kind::audience, "partners"}};
    EXPECT_EQ(share_store::find(*snap, "acme", "llm", share_role::invoke, bob, now), nullptr)
        << "view does not invoke";
    EXPECT_NE(share_store::find(*snap, "acme", "llm", share_role::view, bob, now), nullptr);
    EXPECT_NE(share_store::find(*snap, "acme", "llm", share_role::invoke, partners, now), nullptr);
    EXPECT_EQ(share_store::find(*snap, "acme", "web", share_role::invoke, partners, now), nullptr);
    EXPECT_EQ(share_store::find(*snap, "other", "llm", share_role::invoke, partners, now), nullptr);
    EXPECT_TRUE(share_store::any(*snap, "acme", "llm", share_role::invoke, now));
    EXPECT_FALSE(share_store::any(*snap, "acme", "llm", share_role::invoke, now + 61s))
        << "expired at once, no sweep needed";
    EXPECT_EQ(share_store::find(*snap, "acme", "llm", share_role::invoke, partners, now + 60s),
              nullptr);
}

TEST_F(ShareStore, CapsLiveGrantsPerTenant) {
    share_config cfg;
    cfg.limits.max_per_tenant = 2;
    auto store = *share_store::open(cfg, now);
    ASSERT_TRUE(store->grant(request("llm", "tenant:b"), "acme", now));
    ASSERT_TRUE(store->grant(request("llm", "tenant:c", share_role::invoke, 10s), "acme", now));
    auto third = store->grant(request("llm", "tenant:d"), "acme", now);
    ASSERT_FALSE(third);
    EXPECT_EQ(third.error().code, core::errc::resource_exhausted);
    EXPECT_NE(third.error().message.find("revoke some first"), std::string::npos);
    EXPECT_TRUE(store->grant(request("llm", "tenant:d"), "other", now)) << "per tenant";
    EXPECT_TRUE(store->grant(request("llm", "tenant:d"), "acme", now + 11s))
        << "an expired grant does not count";
}

TEST_F(ShareStore, PersistsAcrossRestartsThroughAnAtomicStateFile) {
    share_config cfg;
    cfg.state_file = (dir_ / "shares.json").string();
    std::string kept;
    {
        auto store = *share_store::open(cfg, now);
        kept = store->grant(request("llm", "tenant:bob"), "acme", now)->id;
        auto gone = store->grant(request("llm", "tenant:eve"), "acme", now)->id;
        ASSERT_TRUE(store->revoke("acme", gone, now));
        ASSERT_TRUE(
            store->grant(request("llm", "tenant:old", share_role::invoke, 5s), "acme", now));
    }
    EXPECT_FALSE(fs::exists(cfg.state_file + ".tmp"));
    EXPECT_EQ(fs::status(cfg.state_file).permissions() & fs::perms::others_read, fs::perms::none);
    auto reopened = share_store::open(cfg, now + 10s);
    ASSERT_TRUE(reopened) << reopened.error().message;
    auto list = (*reopened)->list("acme", now + 10s);
    ASSERT_EQ(list.size(), 1u) << "revoked and expired grants stay gone";
    EXPECT_EQ(list[0].id, kept);

    std::ofstream(cfg.state_file) << "{garbage";
    auto corrupt = share_store::open(cfg, now);
    ASSERT_FALSE(corrupt);
    EXPECT_NE(corrupt.error().message.find("move it away"), std::string::npos);
}

TEST_F(ShareStore, AGrantThatCannotBeSavedIsNotInEffect) {
    share_config cfg;
    cfg.state_file = (dir_ / "missing-dir" / "shares.json").string();
    auto store = *share_store::open(cfg, now);
    auto g = store->grant(request("llm", "tenant:bob"), "acme", now);
    ASSERT_FALSE(g);
    EXPECT_EQ(g.error().code, core::errc::io_error);
    EXPECT_TRUE(store->list("acme", now).empty());
}

TEST_F(ShareStore, UsesAreAuditedAtMostOncePerInterval) {
    share_config cfg;
    cfg.use_audit_interval = 60s;
    auto store = *share_store::open(cfg, now);
    ASSERT_TRUE(store->grant(request("llm", "tenant:bob"), "acme", now));
    const auto& entry = *store->snapshot()->grants.front();
    const auto t0 = std::chrono::steady_clock::time_point(100s);
    std::uint64_t uses = 0;
    EXPECT_TRUE(store->note_use(entry, t0, uses));
    EXPECT_EQ(uses, 1u);
    EXPECT_FALSE(store->note_use(entry, t0 + 1s, uses));
    EXPECT_FALSE(store->note_use(entry, t0 + 59s, uses));
    EXPECT_TRUE(store->note_use(entry, t0 + 61s, uses));
    EXPECT_EQ(uses, 3u) << "the record counts the uses it summarises";
}

TEST(VisitorTokenAudience, AnArrayAudienceHoldingTunnelVisitorNamesExtraAudiences) {
    const long long exp = 1'800'003'600;
    auto g = map_visitor_claims(
        fmt::format(
            R"({{"typ":"tunnel-visitor","aud":["tunnel-visitor","partners"],"sub":"acme","svc":["llm"],"exp":{}}})",
            exp),
        30s, now);
    ASSERT_TRUE(g) << g.error().message;
    EXPECT_EQ(g->audiences, std::vector<std::string>{"partners"});
    auto without = map_visitor_claims(
        fmt::format(
            R"({{"typ":"tunnel-visitor","aud":["partners"],"sub":"acme","svc":["llm"],"exp":{}}})",
            exp),
        30s, now);
    EXPECT_FALSE(without);
}

}  // namespace
}  // namespace tunnel::relay
