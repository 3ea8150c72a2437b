#include "relay/token_minter.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "relay/lease_hold.hpp"
#include "relay/relay_config.hpp"
#include "relay/token_verifier.hpp"

namespace tunnel::relay {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

class TokenMinter : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() /
               fs::path("minter_" + std::to_string(::getpid()) + "_" +
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(dir_);
        secret_ = (dir_ / "secret").string();
        std::ofstream(secret_) << "a-very-secret-secret-of-32-bytes\n";
        ::chmod(secret_.c_str(), 0600);
    }
    void TearDown() override { fs::remove_all(dir_); }

    mint_request request() const {
        mint_request r;
        r.secret_file = secret_;
        r.tenant = "Acme";
        r.allow = {"llm", "Web-*"};
        r.ttl = 1h;
        return r;
    }
    token_verifier verifier(claim_rules rules = {}) const {
        verifier_options o;
        o.path = secret_;
        o.rules = rules;
        return *token_verifier::load(o);
    }

    fs::path dir_;
    std::string secret_;
    const std::chrono::system_clock::time_point now_{std::chrono::seconds(1'800'000'000)};
};

TEST_F(TokenMinter, MintedTokenVerifies) {
    auto req = request();
    req.max_streams = 4;
    req.rps = 2.5;
    req.audience = "relay";
    req.issuer = "ops";
    auto t = mint_token(req, now_);
    ASSERT_TRUE(t) << t.error().message;
    EXPECT_TRUE(t->warnings.empty());
    EXPECT_EQ(t->tenant, "acme");
    EXPECT_EQ(t->expires, now_ + 1h);
    claim_rules rules;
    rules.audience = "relay";
    rules.issuer = "ops";
    auto p = verifier(rules).verify(t->token, now_ + 10min);
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->tenant, "acme");
    EXPECT_EQ(p->allow, (std::vector<std::string>{"llm", "web-*"}));
    EXPECT_EQ(p->max_streams, 4u);
    EXPECT_EQ(p->rps, 2.5);
    EXPECT_EQ(verifier().verify(t->token, now_ + 2h).error().code, token_errc::expired);
}

TEST_F(TokenMinter, EveryProblemNamedAtOnce) {
    mint_request r;
    r.secret_file = (dir_ / "missing").string();
    r.tenant = "bad_tenant";
    r.allow = {"ok", "no/slash"};
    r.ttl = 0ms;
    r.max_streams = 0;
    r.rps = -1;
    auto t = mint_token(r, now_);
    ASSERT_FALSE(t);
    const auto& m = t.error().message;
    for (auto want : {"--tenant \"bad_tenant\"", "--allow \"no/slash\"", "--ttl: must be > 0",
                      "--max-streams", "--rps", "--secret-file: JWT secret file"})
        EXPECT_NE(m.find(want), std::string::npos) << want << "\n" << m;
}

TEST_F(TokenMinter, LimitsAndWarnings) {
    auto r = request();
    r.ttl = std::chrono::hours(24 * 400);
    EXPECT_FALSE(mint_token(r, now_));
    r = request();
    r.allow.clear();
    EXPECT_FALSE(mint_token(r, now_));
    ::chmod(secret_.c_str(), 0644);
    auto t = mint_token(request(), now_);
    ASSERT_TRUE(t);
    ASSERT_EQ(t->warnings.size(), 1u);
    EXPECT_NE(t->warnings[0].find("chmod 600"), std::string::npos);
    EXPECT_EQ(t->warnings[0].find("a-very-secret"), std::string::npos);
}

TEST_F(TokenMinter, AccessClaim) {
    auto r = request();
    r.access = {"token, basic", "token"};
    auto t = mint_token(r, now_);
    ASSERT_TRUE(t) << t.error().message;
    auto p = verifier().verify(t->token, now_);
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_TRUE(p->access.contains(access_mode::token));
    EXPECT_TRUE(p->access.contains(access_mode::basic));
    EXPECT_FALSE(p->access.contains(access_mode::public_));
    r.access = {"token,open"};
    auto bad = mint_token(r, now_);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("--access"), std::string::npos) << bad.error().message;
    EXPECT_EQ(verifier().verify(mint_token(request(), now_)->token, now_)->access,
              access_modes::all());
    r = request();
    r.audience = "tunnel-visitor";
    EXPECT_FALSE(mint_token(r, now_)) << "the visitor audience is reserved";
}

TEST(TokenMinterAllowList, Splits) {
    EXPECT_EQ(split_allow_list("llm, web-*,,x "), (std::vector<std::string>{"llm", "web-*", "x"}));
    EXPECT_TRUE(split_allow_list("").empty());
}

}  // namespace
}  // namespace tunnel::relay

namespace tunnel::relay {
namespace {

// The lease_grace claim (docs/relay.md "Leases and the request queue"):
// minted from --lease-grace, verified, and only ever shortening leases.grace.
TEST_F(TokenMinter, LeaseGraceClaimShortensTheRelaysGrace) {
    auto req = request();
    req.lease_grace = 7s;
    auto t = mint_token(req, now_);
    ASSERT_TRUE(t) << t.error().message;
    auto policy = verifier().verify(t->token, now_);
    ASSERT_TRUE(policy) << policy.error().message;
    ASSERT_TRUE(policy->lease_grace);
    EXPECT_EQ(*policy->lease_grace, 7s);
    relay_config config;  // leases.grace 60s
    EXPECT_EQ(lease_grace_for(config, *policy), 7s);
    config.leases.grace = 3s;
    EXPECT_EQ(lease_grace_for(config, *policy), 3s) << "a claim never lengthens it";
    policy->lease_grace.reset();
    EXPECT_EQ(lease_grace_for(config, *policy), 3s);

    req.lease_grace = 25h;
    auto too_long = mint_token(req, now_);
    ASSERT_FALSE(too_long);
    EXPECT_NE(too_long.error().message.find("--lease-grace: must be from 0"), std::string::npos)
        << too_long.error().message;
}

}  // namespace
}  // namespace tunnel::relay
