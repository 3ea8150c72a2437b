// The local revocation list: checks, a later expiry extends, expired entries
// pruned, subscribers told once, and the SQLite state surviving a reopen.
#include "relay/revocation_list.hpp"

#include "relay/token_minter.hpp"
#include "relay/token_verifier.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include <fmt/format.h>

namespace tunnel::relay {
namespace {

using namespace std::chrono_literals;
using sys = std::chrono::system_clock;
namespace fs = std::filesystem;

class RevocationList : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() /
               fmt::format("revocation-test-{}-{}", ::getpid(),
                           ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }
    std::string db() const { return (dir_ / "revoked.db").string(); }
    fs::path dir_;
};

TEST(RevocationJti, Checks) {
    EXPECT_EQ(check_jti("k3JqX0-_abc"), "");
    EXPECT_NE(check_jti(""), "");
    EXPECT_NE(check_jti("a b"), "");
    EXPECT_NE(check_jti(std::string(65, 'x')), "");
    EXPECT_EQ(check_jti(std::string(64, 'x')), "");
    EXPECT_NE(check_jti("tab\there"), "");
}

TEST_F(RevocationList, AddCheckListAndSubscribe) {
    auto list = open_local_revocation_list("");
    ASSERT_TRUE(list) << list.error().message;
    auto& l = **list;
    std::vector<std::string> told;
    l.subscribe([&](const revoked_token& e) { told.push_back(e.jti); });
    const auto now = sys::now();
    EXPECT_FALSE(l.revoked("a"));
    auto added = l.add({"a", now + 1h, now});
    ASSERT_TRUE(added);
    EXPECT_TRUE(*added);
    EXPECT_TRUE(l.revoked("a"));
    EXPECT_FALSE(l.revoked("b"));
    // Again, with a later expiry: not new, extended, subscribers not told twice.
    added = l.add({"a", now + 2h, now + 1s});
    ASSERT_TRUE(added);
    EXPECT_FALSE(*added);
    ASSERT_EQ(l.list().size(), 1u);
    EXPECT_EQ(l.list()[0].expires, now + 2h);
    EXPECT_EQ(l.list()[0].revoked_at, now);
    EXPECT_EQ(told, (std::vector<std::string>{"a"}));
    EXPECT_FALSE(l.add({"a b", now + 1h, now}));
}

TEST_F(RevocationList, ExpiredEntriesArePruned) {
    auto list = open_local_revocation_list("");
    ASSERT_TRUE(list);
    auto& l = **list;
    const auto now = sys::now();
    ASSERT_TRUE(l.add({"old", now + 1s, now}));
    // A later add (its time past old's expiry) drops it.
    ASSERT_TRUE(l.add({"new", now + 1h, now + 2s}));
    EXPECT_FALSE(l.revoked("old"));
    EXPECT_TRUE(l.revoked("new"));
}

TEST_F(RevocationList, SurvivesAReopenAndDropsExpiredAtOpen) {
    const auto now = sys::now();
    {
        auto list = open_local_revocation_list(db(), now);
        ASSERT_TRUE(list) << list.error().message;
        ASSERT_TRUE((*list)->add({"keep", now + 1h, now}));
        ASSERT_TRUE((*list)->add({"short", now + 10s, now}));
    }
    auto list = open_local_revocation_list(db(), now + 1min);
    ASSERT_TRUE(list) << list.error().message;
    EXPECT_TRUE((*list)->revoked("keep"));
    EXPECT_FALSE((*list)->revoked("short"));
    ASSERT_EQ((*list)->list().size(), 1u);
    EXPECT_EQ((*list)->list()[0].jti, "keep");
}

TEST_F(RevocationList, AnUnwritableStateFileIsAnError) {
    auto list = open_local_revocation_list((dir_ / "missing-dir" / "revoked.db").string());
    EXPECT_FALSE(list);
}

// What --revoke names: tunnel tokens carry a random jti, the verifier keeps
// it, and a token without one maps to an empty ID (it cannot be revoked).
TEST_F(RevocationList, TunnelTokensCarryAJtiTheVerifierKeeps) {
    const auto secret = (dir_ / "jwt.secret").string();
    { std::ofstream(secret) << "0123456789abcdef0123456789abcdef\n"; }
    fs::permissions(secret, fs::perms::owner_read | fs::perms::owner_write);
    mint_request req;
    req.secret_file = secret;
    req.tenant = "acme";
    req.allow = {"web"};
    req.ttl = 1h;
    auto a = mint_token(req);
    auto b = mint_token(req);
    ASSERT_TRUE(a) << a.error().message;
    ASSERT_TRUE(b);
    EXPECT_EQ(check_jti(a->id), "");
    EXPECT_NE(a->id, b->id);
    verifier_options o;
    o.path = secret;
    auto v = token_verifier::load(o);
    ASSERT_TRUE(v) << v.error().message;
    auto policy = v->verify(a->token);
    ASSERT_TRUE(policy) << policy.error().message;
    EXPECT_EQ(policy->id, a->id);

    claim_rules rules;
    const auto now = sys::time_point(std::chrono::seconds(1000));
    auto none = map_claims(R"({"sub":"t1","allow":["*"],"exp":2000})", rules, now);
    ASSERT_TRUE(none);
    EXPECT_EQ(none->id, "");
    EXPECT_FALSE(map_claims(R"({"sub":"t1","allow":["*"],"exp":2000,"jti":"a b"})", rules, now));
    EXPECT_FALSE(map_claims(R"({"sub":"t1","allow":["*"],"exp":2000,"jti":7})", rules, now));
}

}  // namespace
}  // namespace tunnel::relay
