// Visitor tokens: minted by `tunnel token --visitor`, verified through
// token_verifier (libjwt, HS256 pinned), never interchangeable with tunnel
// tokens, refused when expired, forged, for another tenant or service, or
// malformed.
#include "relay/visitor_token.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "core/encoding.hpp"
#include "relay/token_minter.hpp"

namespace tunnel::relay {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

class VisitorToken : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() /
               fs::path("visitor_token_" + std::to_string(::getpid()) + "_" +
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(dir_);
        secret_ = write("visitor.secret", "visitor-secret-of-at-least-32-bytes!\n");
        other_secret_ = write("other.secret", "another-secret-entirely-32-bytes!!\n");
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::string write(const std::string& name, const std::string& text) {
        auto p = (dir_ / name).string();
        std::ofstream(p) << text;
        ::chmod(p.c_str(), 0600);
        return p;
    }
    token_verifier verifier(const std::string& secret) const {
        auto v = token_verifier::load(visitor_verifier_options(secret, 30s));
        EXPECT_TRUE(v) << v.error().message;
        return std::move(*v);
    }
    std::string visitor(const std::string& tenant = "acme",
                        std::vector<std::string> allow = {"llm"},
                        std::chrono::milliseconds ttl = 1h,
                        const std::string* secret = nullptr) const {
        visitor_mint_request r;
        r.secret_file = secret ? *secret : secret_;
        r.tenant = tenant;
        r.allow = std::move(allow);
        r.ttl = ttl;
        auto t = mint_visitor_token(r, now_);
        EXPECT_TRUE(t) << t.error().message;
        return t ? t->token : std::string();
    }

    fs::path dir_;
    std::string secret_, other_secret_;
    const std::chrono::system_clock::time_point now_{std::chrono::seconds(1'800'000'000)};
};

TEST_F(VisitorToken, MintedTokenVerifiesAndGrantsItsServicesOnly) {
    auto g =
        verify_visitor_token(verifier(secret_), visitor("Acme", {"llm", "web-*"}), now_ + 5min);
    ASSERT_TRUE(g) << g.error().message;
    EXPECT_EQ(g->tenant, "acme");
    EXPECT_EQ(g->services, (std::vector<std::string>{"llm", "web-*"}));
    EXPECT_EQ(g->expires, now_ + 1h);
    EXPECT_EQ(g->id.size(), 16u);  // 12 random bytes, base64url
    EXPECT_TRUE(grants(*g, "acme", "llm"));
    EXPECT_TRUE(grants(*g, "acme", "web-blog"));
    EXPECT_FALSE(grants(*g, "acme", "api")) << "another service";
    EXPECT_FALSE(grants(*g, "evil", "llm")) << "another tenant";
    EXPECT_FALSE(grants(*g, "acme", "LLM")) << "names are lower-case labels";
    EXPECT_FALSE(grants(*g, "acme", "web--x")) << "not a label";
    // Two tokens minted at once differ (jti).
    EXPECT_NE(visitor(), visitor());
}

TEST_F(VisitorToken, ExpiredForgedAndAlgorithmConfusionRefused) {
    const auto v = verifier(secret_);
    auto expired = verify_visitor_token(v, visitor("acme", {"llm"}, 1min), now_ + 2min);
    ASSERT_FALSE(expired);
    EXPECT_EQ(expired.error().code, token_errc::expired);
    EXPECT_TRUE(verify_visitor_token(v, visitor("acme", {"llm"}, 1min), now_ + 80s))
        << "30 s of leeway";

    auto foreign = verify_visitor_token(v, visitor("acme", {"llm"}, 1h, &other_secret_), now_);
    ASSERT_FALSE(foreign);
    EXPECT_EQ(foreign.error().code, token_errc::bad_signature);

    // Payload swapped for one naming another tenant: the signature no longer fits.
    auto good = visitor();
    const auto a = good.find('.'), b = good.rfind('.');
    auto payload = *core::base64url_decode(good.substr(a + 1, b - a - 1));
    const auto at = payload.find("\"acme\"");
    ASSERT_NE(at, std::string::npos);
    payload.replace(at, 6, "\"evil\"");
    auto tampered = good.substr(0, a + 1) + core::base64url_encode(payload) + good.substr(b);
    EXPECT_EQ(verify_visitor_token(v, tampered, now_).error().code, token_errc::bad_signature);

    // alg none, and HS512: never accepted.
    const auto none_header = core::base64url_encode(R"({"alg":"none","typ":"JWT"})");
    auto none = none_header + good.substr(a, b - a) + ".";
    EXPECT_EQ(verify_visitor_token(v, none, now_).error().code, token_errc::unsupported_alg);
    auto hs512 = core::base64url_encode(R"({"alg":"HS512"})") + good.substr(a);
    EXPECT_EQ(verify_visitor_token(v, hs512, now_).error().code, token_errc::unsupported_alg);

    for (std::string junk :
         std::vector<std::string>{"", "a", "a.b", "a.b.c", "a.b.c.d", std::string(9000, 'a'),
                                  "eyJ.eyJ.sig", good + "x", "." + good})
        EXPECT_FALSE(verify_visitor_token(v, junk, now_)) << junk.substr(0, 40);
}

TEST_F(VisitorToken, TunnelAndVisitorTokensNeverMix) {
    // The same secret signs both kinds here, the worst case for mixing them up.
    mint_request tunnel;
    tunnel.secret_file = secret_;
    tunnel.tenant = "acme";
    tunnel.allow = {"llm"};
    tunnel.ttl = 1h;
    auto tunnel_token = mint_token(tunnel, now_);
    ASSERT_TRUE(tunnel_token);
    auto as_visitor = verify_visitor_token(verifier(secret_), tunnel_token->token, now_);
    ASSERT_FALSE(as_visitor);
    EXPECT_EQ(as_visitor.error().code, token_errc::wrong_type);

    verifier_options o;
    o.path = secret_;
    auto tunnel_verifier = token_verifier::load(o);
    ASSERT_TRUE(tunnel_verifier);
    auto as_tunnel = tunnel_verifier->verify(visitor(), now_);
    ASSERT_FALSE(as_tunnel);
    EXPECT_EQ(as_tunnel.error().code, token_errc::wrong_type);
}

TEST(VisitorClaims, MappingIsStrict) {
    const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1000));
    auto map = [&](std::string_view extra) {
        return map_visitor_claims(
            fmt::format(
                R"({{"typ":"tunnel-visitor","aud":"tunnel-visitor","sub":"acme","svc":["llm"],"exp":2000{}}})",
                extra),
            30s, now);
    };
    ASSERT_TRUE(map("")) << map("").error().message;
    EXPECT_EQ(map(R"(,"jti":"abc")")->id, "abc");
    struct bad_case {
        std::string claims;
        token_errc code;
    };
    const std::vector<bad_case> cases = {
        {R"({"aud":"tunnel-visitor","sub":"acme","svc":["llm"],"exp":2000})",
         token_errc::wrong_type},
        {R"({"typ":"Bearer","aud":"tunnel-visitor","sub":"acme","svc":["llm"],"exp":2000})",
         token_errc::wrong_type},
        {R"({"typ":"tunnel-visitor","sub":"acme","svc":["llm"],"exp":2000})",
         token_errc::wrong_audience},
        {R"({"typ":"tunnel-visitor","aud":["tunnel-visitor","Not A Label"],"sub":"acme","svc":["llm"],"exp":2000})",
         token_errc::wrong_audience},
        {R"({"typ":"tunnel-visitor","aud":"tunnel-visitor","sub":"acme","svc":["llm"]})",
         token_errc::missing_claim},
        {R"({"typ":"tunnel-visitor","aud":"tunnel-visitor","sub":"acme","svc":["llm"],"exp":"2000"})",
         token_errc::invalid_claim},
        {R"({"typ":"tunnel-visitor","aud":"tunnel-visitor","sub":"acme","svc":["llm"],"exp":900})",
         token_errc::expired},
        {R"({"typ":"tunnel-visitor","aud":"tunnel-visitor","sub":"acme","svc":["llm"],"exp":2000,"nbf":1500})",
         token_errc::not_yet_valid},
        {R"({"typ":"tunnel-visitor","aud":"tunnel-visitor","sub":"Acme","svc":["llm"],"exp":2000})",
         token_errc::invalid_claim},
        {R"({"typ":"tunnel-visitor","aud":"tunnel-visitor","svc":["llm"],"exp":2000})",
         token_errc::missing_claim},
        {R"({"typ":"tunnel-visitor","aud":"tunnel-visitor","sub":"acme","exp":2000})",
         token_errc::missing_claim},
        {R"({"typ":"tunnel-visitor","aud":"tunnel-visitor","sub":"acme","svc":[],"exp":2000})",
         token_errc::invalid_claim},
        {R"({"typ":"tunnel-visitor","aud":"tunnel-visitor","sub":"acme","svc":"llm","exp":2000})",
         token_errc::invalid_claim},
        {R"({"typ":"tunnel-visitor","aud":"tunnel-visitor","sub":"acme","svc":["LL/M"],"exp":2000})",
         token_errc::invalid_claim},
        {R"({"typ":"tunnel-visitor","aud":"tunnel-visitor","sub":"acme","svc":["llm"],"exp":2000,"jti":"a b"})",
         token_errc::invalid_claim},
        {"[]", token_errc::malformed},
        {"{", token_errc::malformed},
        {std::string(9000, ' '), token_errc::malformed},
    };
    for (const auto& c : cases) {
        auto g = map_visitor_claims(c.claims, 30s, now);
        ASSERT_FALSE(g) << c.claims;
        EXPECT_EQ(g.error().code, c.code) << c.claims << ": " << g.error().message;
    }
}

TEST_F(VisitorToken, MintingChecksItsInput) {
    visitor_mint_request r;
    r.secret_file = (dir_ / "missing").string();
    r.tenant = "bad_tenant";
    r.allow = {"no/slash"};
    r.ttl = 0ms;
    auto t = mint_visitor_token(r, now_);
    ASSERT_FALSE(t);
    for (auto want : {"--tenant", "--allow \"no/slash\"", "--ttl", "--secret-file"})
        EXPECT_NE(t.error().message.find(want), std::string::npos) << want << t.error().message;
    r = {secret_, "acme", {}, 1h};
    EXPECT_FALSE(mint_visitor_token(r, now_)) << "no services";
}

}  // namespace
}  // namespace tunnel::relay
