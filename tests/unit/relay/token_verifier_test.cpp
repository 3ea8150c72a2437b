#include "relay/token_verifier.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>

#include <fmt/format.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <nlohmann/json.hpp>

#include "core/encoding.hpp"

namespace tunnel::relay {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
namespace fs = std::filesystem;

// A generated key pair as PEM text.
struct key_pair {
    std::string private_pem;
    std::string public_pem;
    std::shared_ptr<EVP_PKEY> key;
};

key_pair generate(bool rsa) {
    EVP_PKEY* raw = rsa ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048))
                        : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    std::shared_ptr<EVP_PKEY> key(raw, EVP_PKEY_free);
    auto pem = [](auto write) {
        std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
        write(bio.get());
        char* data = nullptr;
        long n = BIO_get_mem_data(bio.get(), &data);
        return std::string(data, static_cast<size_t>(n));
    };
    key_pair kp;
    kp.private_pem = pem(
        [&](BIO* b) { PEM_write_bio_PrivateKey(b, raw, nullptr, nullptr, 0, nullptr, nullptr); });
    kp.public_pem = pem([&](BIO* b) { PEM_write_bio_PUBKEY(b, raw); });
    kp.key = key;
    return kp;
}

std::string bn_param(EVP_PKEY* key, const char* name) {
    BIGNUM* bn = nullptr;
    EVP_PKEY_get_bn_param(key, name, &bn);
    std::string out(static_cast<size_t>(BN_num_bytes(bn)), '\0');
    BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
    BN_free(bn);
    return core::base64url_encode(out);
}

json rsa_jwk(const key_pair& kp, std::string kid) {
    return {{"kty", "RSA"},
            {"kid", kid},
            {"use", "sig"},
            {"alg", "RS256"},
            {"n", bn_param(kp.key.get(), OSSL_PKEY_PARAM_RSA_N)},
            {"e", bn_param(kp.key.get(), OSSL_PKEY_PARAM_RSA_E)}};
}

json ec_jwk(const key_pair& kp, std::string kid) {
    unsigned char point[65];
    size_t len = 0;
    EVP_PKEY_get_octet_string_param(kp.key.get(), OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point,
                                    &len);
    std::string p(reinterpret_cast<char*>(point), len);  // 0x04 || x || y
    return {{"kty", "EC"},
            {"kid", kid},
            {"crv", "P-256"},
            {"x", core::base64url_encode(p.substr(1, 32))},
            {"y", core::base64url_encode(p.substr(33, 32))}};
}

// Signs `claims` with libjwt.
std::string sign(const json& claims, jwt_alg_t alg, const std::string& key,
                 const std::string& kid = "") {
    jwt_t* raw = nullptr;
    jwt_new(&raw);
    std::unique_ptr<jwt_t, decltype(&jwt_free)> jwt(raw, jwt_free);
    EXPECT_EQ(jwt_add_grants_json(raw, claims.dump().c_str()), 0);
    if (!kid.empty()) jwt_add_header(raw, "kid", kid.c_str());
    const auto* key_bytes =
        key.empty() ? nullptr : reinterpret_cast<const unsigned char*>(key.data());
    EXPECT_EQ(jwt_set_alg(raw, alg, key_bytes, static_cast<int>(key.size())), 0);
    char* out = jwt_encode_str(raw);
    EXPECT_NE(out, nullptr);
    std::string token = out ? out : "";
    std::free(out);
    return token;
}

class TokenVerifier : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() /
               fs::path("relay_tv_" + std::to_string(::getpid()) + "_" +
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::string write(const std::string& name, const std::string& content) {
        auto p = (dir_ / name).string();
        std::ofstream(p, std::ios::binary) << content;
        return p;
    }
    token_verifier load(verifier_options o) {
        auto v = token_verifier::load(o);
        EXPECT_TRUE(v) << (v ? "" : v.error().message);
        return std::move(*v);
    }
    token_verifier hs256(claim_rules rules = {}) {
        verifier_options o;
        o.path = write("secret", secret_ + "\n");
        o.rules = rules;
        return load(o);
    }
    json claims(long long exp_in = 3600) const {
        return {{"sub", "acme"},
                {"allow", {"llm", "web-*"}},
                {"exp", now_s_ + exp_in},
                {"iat", now_s_}};
    }

    fs::path dir_;
    const std::string secret_ = "0123456789abcdef0123456789abcdef";
    const long long now_s_ = 1'800'000'000;
    const std::chrono::system_clock::time_point now_{std::chrono::seconds(now_s_)};
};

TEST_F(TokenVerifier, Hs256GoodTokenGivesPolicyWithDefaults) {
    claim_rules rules;
    rules.default_max_streams = 7;
    rules.default_rps = 3.5;
    auto v = hs256(rules);
    auto p = v.verify(sign(claims(), JWT_ALG_HS256, secret_), now_);
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->tenant, "acme");
    EXPECT_EQ(p->allow, (std::vector<std::string>{"llm", "web-*"}));
    EXPECT_EQ(p->max_streams, 7u);
    EXPECT_EQ(p->rps, 3.5);
    EXPECT_EQ(p->expires, now_ + 3600s);
    EXPECT_TRUE(may_publish(*p, "llm"));
    EXPECT_TRUE(may_publish(*p, "web-1"));
    EXPECT_FALSE(may_publish(*p, "web"));
    EXPECT_FALSE(may_publish(*p, "llm2"));
    EXPECT_FALSE(may_publish(*p, "web-a--b"));  // not a valid label
    EXPECT_EQ(v.key_fingerprint().rfind("SHA256:", 0), 0u);
    EXPECT_EQ(v.key_fingerprint().find(secret_), std::string::npos);
}

TEST_F(TokenVerifier, OptionalClaimsOverrideDefaults) {
    auto c = claims();
    c["max_streams"] = 3;
    c["rps"] = 0.5;
    auto p = hs256().verify(sign(c, JWT_ALG_HS256, secret_), now_);
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->max_streams, 3u);
    EXPECT_EQ(p->rps, 0.5);
}

TEST_F(TokenVerifier, ExpiredAndLeeway) {
    auto v = hs256();  // leeway 30 s
    auto token = sign(claims(-31), JWT_ALG_HS256, secret_);
    auto p = v.verify(token, now_);
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code, token_errc::expired);
    EXPECT_EQ(to_string(p.error().code), "token_expired");
    EXPECT_EQ(p.error().message.find(token), std::string::npos);
    EXPECT_TRUE(v.verify(sign(claims(-29), JWT_ALG_HS256, secret_), now_));
}

TEST_F(TokenVerifier, NotYetValid) {
    auto v = hs256();
    auto c = claims();
    c["nbf"] = now_s_ + 120;
    auto p = v.verify(sign(c, JWT_ALG_HS256, secret_), now_);
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code, token_errc::not_yet_valid);
    EXPECT_TRUE(v.verify(sign(c, JWT_ALG_HS256, secret_), now_ + 100s));
    auto future_iat = claims();
    future_iat["iat"] = now_s_ + 600;
    EXPECT_EQ(v.verify(sign(future_iat, JWT_ALG_HS256, secret_), now_).error().code,
              token_errc::not_yet_valid);
}

TEST_F(TokenVerifier, AlgNoneRefused) {
    auto v = hs256();
    auto header = core::base64url_encode(R"({"alg":"none","typ":"JWT"})");
    auto body = core::base64url_encode(claims().dump());
    for (auto token : {header + "." + body + ".", header + "." + body + ".c2ln"}) {
        auto p = v.verify(token, now_);
        ASSERT_FALSE(p);
        EXPECT_EQ(p.error().code, token_errc::unsupported_alg) << p.error().message;
    }
    // libjwt's own alg-none encoding too.
    auto p = v.verify(sign(claims(), JWT_ALG_NONE, ""), now_);
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code, token_errc::unsupported_alg);
}

TEST_F(TokenVerifier, WrongKeyRefused) {
    auto p =
        hs256().verify(sign(claims(), JWT_ALG_HS256, "another-secret-another-secret-xx"), now_);
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code, token_errc::bad_signature);
    EXPECT_EQ(to_string(p.error().code), "bad_signature");
}

TEST_F(TokenVerifier, TamperedPayloadRefused) {
    auto token = sign(claims(), JWT_ALG_HS256, secret_);
    auto dot1 = token.find('.');
    auto dot2 = token.find('.', dot1 + 1);
    auto c = claims();
    c["allow"] = {"*"};
    auto forged = token.substr(0, dot1 + 1) + core::base64url_encode(c.dump()) + token.substr(dot2);
    EXPECT_EQ(hs256().verify(forged, now_).error().code, token_errc::bad_signature);
}

// HS256 MACs are compared by us in constant time before libjwt (which uses
// strcmp) sees the token: near misses, truncations and extensions of a good
// signature are all refused, and the good one still passes.
TEST_F(TokenVerifier, Hs256SignatureNearMissesRefused) {
    auto token = sign(claims(), JWT_ALG_HS256, secret_);
    auto v = hs256();
    ASSERT_TRUE(v.verify(token, now_));
    auto dot2 = token.rfind('.');
    auto flip_last = token;
    flip_last.back() = flip_last.back() == 'A' ? 'B' : 'A';
    auto flip_first = token;
    flip_first[dot2 + 1] = flip_first[dot2 + 1] == 'A' ? 'B' : 'A';
    for (const auto& forged :
         {flip_last, flip_first, token.substr(0, token.size() - 1), token + "A",
          token + "==", token.substr(0, dot2 + 1) + std::string(43, 'A')}) {
        auto p = v.verify(forged, now_);
        ASSERT_FALSE(p) << forged;
        EXPECT_EQ(p.error().code, token_errc::bad_signature) << forged;
    }
}

TEST_F(TokenVerifier, AudienceAndIssuer) {
    claim_rules rules;
    rules.audience = "relay-1";
    rules.issuer = "https://issuer";
    auto v = hs256(rules);
    auto c = claims();
    EXPECT_EQ(v.verify(sign(c, JWT_ALG_HS256, secret_), now_).error().code,
              token_errc::wrong_audience);
    c["aud"] = "relay-2";
    EXPECT_EQ(v.verify(sign(c, JWT_ALG_HS256, secret_), now_).error().code,
              token_errc::wrong_audience);
    c["aud"] = {"other", "relay-1"};
    EXPECT_EQ(v.verify(sign(c, JWT_ALG_HS256, secret_), now_).error().code,
              token_errc::wrong_issuer);
    c["iss"] = "https://evil";
    EXPECT_EQ(v.verify(sign(c, JWT_ALG_HS256, secret_), now_).error().code,
              token_errc::wrong_issuer);
    c["iss"] = "https://issuer";
    EXPECT_TRUE(v.verify(sign(c, JWT_ALG_HS256, secret_), now_));
}

TEST_F(TokenVerifier, MissingClaims) {
    auto v = hs256();
    for (const char* claim : {"sub", "allow", "exp"}) {
        auto c = claims();
        c.erase(claim);
        auto p = v.verify(sign(c, JWT_ALG_HS256, secret_), now_);
        ASSERT_FALSE(p) << claim;
        EXPECT_EQ(p.error().code, token_errc::missing_claim) << claim;
        EXPECT_NE(p.error().message.find(claim), std::string::npos) << p.error().message;
    }
}

TEST_F(TokenVerifier, InvalidClaims) {
    auto v = hs256();
    std::vector<std::pair<const char*, json>> cases = {
        {"sub", "Acme"},      {"sub", 5},         {"sub", "a--b"},    {"allow", json::array()},
        {"allow", "llm"},     {"allow", {"LLM"}}, {"allow", {"a/b"}}, {"max_streams", 0},
        {"max_streams", 1.5}, {"rps", 0},         {"rps", "fast"},    {"exp", "tomorrow"},
        {"exp", 1e12},        {"nbf", "x"}};
    for (auto& [claim, value] : cases) {
        auto c = claims();
        c[claim] = value;
        auto p = v.verify(sign(c, JWT_ALG_HS256, secret_), now_);
        ASSERT_FALSE(p) << claim << "=" << value.dump();
        EXPECT_EQ(p.error().code, token_errc::invalid_claim) << claim << "=" << value.dump();
    }
}

TEST_F(TokenVerifier, MalformedTokens) {
    auto v = hs256();
    for (const std::string& t : std::vector<std::string>{"", "abc", "a.b", "a.b.c.d", "!!!.e30.x",
                                                         std::string(9000, 'a')}) {
        auto p = v.verify(t, now_);
        ASSERT_FALSE(p) << t;
        EXPECT_EQ(p.error().code, token_errc::malformed) << t;
    }
}

TEST_F(TokenVerifier, Rs256GoodPathAndWrongAlgorithm) {
    auto kp = generate(true);
    verifier_options o;
    o.source = verifier_options::key_source::public_key_file;
    o.path = write("rsa.pub", kp.public_pem);
    o.algorithm = jwt_algorithm::rs256;
    auto v = load(o);
    auto p = v.verify(sign(claims(), JWT_ALG_RS256, kp.private_pem), now_);
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->tenant, "acme");
    // Signed by another RSA key.
    auto other = generate(true);
    EXPECT_EQ(v.verify(sign(claims(), JWT_ALG_RS256, other.private_pem), now_).error().code,
              token_errc::bad_signature);
    // HS256 token MACed with the public PEM's bytes: libjwt 1.10 would accept it.
    auto confused = sign(claims(), JWT_ALG_HS256, kp.public_pem);
    auto r = v.verify(confused, now_);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, token_errc::unsupported_alg);
    EXPECT_NE(r.error().message.find("RS256"), std::string::npos) << r.error().message;
}

TEST_F(TokenVerifier, Es256GoodPath) {
    auto kp = generate(false);
    verifier_options o;
    o.source = verifier_options::key_source::public_key_file;
    o.path = write("ec.pub", kp.public_pem);
    o.algorithm = jwt_algorithm::es256;
    auto v = load(o);
    auto p = v.verify(sign(claims(), JWT_ALG_ES256, kp.private_pem), now_);
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(
        v.verify(sign(claims(), JWT_ALG_ES256, generate(false).private_pem), now_).error().code,
        token_errc::bad_signature);
    EXPECT_EQ(v.verify(sign(claims(), JWT_ALG_HS256, kp.public_pem), now_).error().code,
              token_errc::unsupported_alg);
}

TEST_F(TokenVerifier, KeyFileMustFitAlgorithm) {
    auto rsa = generate(true);
    verifier_options o;
    o.source = verifier_options::key_source::public_key_file;
    o.path = write("rsa.pub", rsa.public_pem);
    o.algorithm = jwt_algorithm::es256;
    auto v = token_verifier::load(o);
    ASSERT_FALSE(v);
    EXPECT_NE(v.error().message.find("not an EC public key"), std::string::npos)
        << v.error().message;
    o.path = write("garbage.pub", "hello");
    o.algorithm = jwt_algorithm::rs256;
    EXPECT_FALSE(token_verifier::load(o));
    o.path = (dir_ / "missing").string();
    EXPECT_EQ(token_verifier::load(o).error().code, core::errc::not_found);
}

TEST_F(TokenVerifier, SecretFileChecks) {
    verifier_options o;
    o.path = write("empty", "\n");
    EXPECT_NE(token_verifier::load(o).error().message.find("empty"), std::string::npos);
    o.path = write("short", "short\n");
    EXPECT_NE(token_verifier::load(o).error().message.find("at least 16"), std::string::npos);
    o.path = write("ok", secret_);
    o.algorithm = jwt_algorithm::rs256;
    EXPECT_FALSE(token_verifier::load(o));
}

TEST_F(TokenVerifier, JwksRsaAndEcKeysSelectedByKid) {
    auto rsa1 = generate(true);
    auto rsa2 = generate(true);
    auto ec = generate(false);
    json jwks = {{"keys",
                  {rsa_jwk(rsa1, "r1"),
                   rsa_jwk(rsa2, "r2"),
                   ec_jwk(ec, "e1"),
                   {{"kty", "oct"}, {"k", "AAAA"}}}}};
    auto all = jwks_to_pem(jwks.dump());
    ASSERT_TRUE(all) << all.error().message;
    EXPECT_EQ(all->size(), 3u);

    verifier_options o;
    o.source = verifier_options::key_source::jwks_file;
    o.path = write("jwks.json", jwks.dump());
    o.algorithm = jwt_algorithm::rs256;
    auto v = load(o);
    EXPECT_TRUE(v.verify(sign(claims(), JWT_ALG_RS256, rsa2.private_pem, "r2"), now_));
    EXPECT_TRUE(
        v.verify(sign(claims(), JWT_ALG_RS256, rsa1.private_pem), now_));  // no kid: try each
    EXPECT_EQ(v.verify(sign(claims(), JWT_ALG_RS256, rsa1.private_pem, "r2"), now_).error().code,
              token_errc::bad_signature);
    EXPECT_EQ(v.verify(sign(claims(), JWT_ALG_RS256, rsa1.private_pem, "nope"), now_).error().code,
              token_errc::bad_signature);

    o.algorithm = jwt_algorithm::es256;
    auto ve = load(o);
    EXPECT_TRUE(ve.verify(sign(claims(), JWT_ALG_ES256, ec.private_pem, "e1"), now_));
    EXPECT_EQ(ve.verify(sign(claims(), JWT_ALG_RS256, rsa1.private_pem, "r1"), now_).error().code,
              token_errc::unsupported_alg);
}

TEST_F(TokenVerifier, JwksWithoutUsableKeys) {
    EXPECT_FALSE(jwks_to_pem("not json"));
    EXPECT_FALSE(jwks_to_pem(R"({"keys": []})"));
    auto r = jwks_to_pem(R"({"keys": [{"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}]})");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("P-256"), std::string::npos) << r.error().message;
}

TEST(TokenClaims, MapClaimsIsPure) {
    claim_rules rules;
    auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1000));
    auto p = map_claims(R"({"sub":"t1","allow":["*"],"exp":2000.5})", rules, now);
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_EQ(p->tenant, "t1");
    EXPECT_EQ(map_claims("[]", rules, now).error().code, token_errc::malformed);
    EXPECT_EQ(map_claims("{", rules, now).error().code, token_errc::malformed);
}

TEST(TokenClaims, DatesFarOutOfRangeAreRefusedNotOverflowed) {
    // jwt_claims_fuzz found iat = 1.8e40 reaching a cast to long long (UB).
    claim_rules rules;
    auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1000));
    for (const char* claim : {"iat", "nbf"}) {
        auto p =
            map_claims(fmt::format(R"({{"sub":"t1","allow":["*"],"exp":2000,"{}":1.8e40}})", claim),
                       rules, now);
        ASSERT_FALSE(p) << claim;
        EXPECT_EQ(p.error().code, token_errc::invalid_claim) << claim;
    }
    auto far = map_claims(R"({"sub":"t1","allow":["*"],"exp":2000,"iat":-1e300})", rules, now);
    ASSERT_FALSE(far);
    EXPECT_EQ(far.error().code, token_errc::invalid_claim);
}

TEST(TokenClaims, AccessClaimNarrowsVisitorAccessModes) {
    claim_rules rules;
    auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1000));
    auto all = map_claims(R"({"sub":"t1","allow":["*"],"exp":2000})", rules, now);
    ASSERT_TRUE(all);
    EXPECT_EQ(all->access, access_modes::all()) << "no claim: every mode";
    auto some = map_claims(
        R"({"sub":"t1","allow":["*"],"exp":2000,"access":["token","basic","token"]})", rules, now);
    ASSERT_TRUE(some) << some.error().message;
    EXPECT_TRUE(some->access.contains(access_mode::token));
    EXPECT_TRUE(some->access.contains(access_mode::basic));
    EXPECT_FALSE(some->access.contains(access_mode::public_));
    EXPECT_FALSE(some->access.contains(access_mode::ip));
    for (auto bad : {R"("token")", "[]", R"(["Token"])", R"(["token",1])", R"(["open"])",
                     R"(["public","token","basic","ip","ip"])", "null"}) {
        auto p = map_claims(
            fmt::format(R"({{"sub":"t1","allow":["*"],"exp":2000,"access":{}}})", bad), rules, now);
        ASSERT_FALSE(p) << bad;
        EXPECT_EQ(p.error().code, token_errc::invalid_claim) << bad;
    }
}

TEST(TokenClaims, VisitorTokenNeverAttachesATunnel) {
    claim_rules rules;
    auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1000));
    // Even with an allow list added, a visitor-typed token is refused.
    auto p = map_claims(
        R"({"typ":"tunnel-visitor","aud":"tunnel-visitor","sub":"t1","svc":["llm"],"allow":["*"],"exp":2000})",
        rules, now);
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code, token_errc::wrong_type);
    EXPECT_EQ(to_string(p.error().code), "wrong_token_type");
    // Other `typ` values (an IdP's "Bearer") are not ours to judge.
    EXPECT_TRUE(map_claims(R"({"typ":"Bearer","sub":"t1","allow":["*"],"exp":2000})", rules, now));
}

TEST(TokenClaims, ARefusalMessageNeverNamesTheConfiguredAudienceOrIssuer) {
    claim_rules rules;
    rules.audience = "secret-audience";
    rules.issuer = "secret-issuer";
    auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1000));
    for (const char* claims : {R"({"sub":"t1","allow":["*"],"exp":2000})",
                               R"({"sub":"t1","allow":["*"],"exp":2000,"aud":"x"})",
                               R"({"sub":"t1","allow":["*"],"exp":2000,"aud":"secret-audience"})",
                               R"({"sub":"t1","allow":["*"],"exp":2000,"aud":"secret-audience",)"
                               R"("iss":"x"})"}) {
        auto p = map_claims(claims, rules, now);
        ASSERT_FALSE(p) << claims;
        EXPECT_EQ(p.error().message.find("secret-"), std::string::npos) << p.error().message;
        // The relay's own log gets the detail.
        EXPECT_NE(p.error().detail.find("secret-"), std::string::npos) << p.error().detail;
    }
}

TEST(TokenClaims, TenantCapClaimsOnlyNarrowTheRelaysLimits) {
    claim_rules rules;
    rules.max_tunnels = 4;
    rules.max_names = 10;
    auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1000));
    auto p = map_claims(R"({"sub":"t1","allow":["*"],"exp":2000})", rules, now);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->max_tunnels, 4u);
    EXPECT_EQ(p->max_names, 10u);
    p = map_claims(R"({"sub":"t1","allow":["*"],"exp":2000,"max_tunnels":1,"max_names":3})", rules,
                   now);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->max_tunnels, 1u);
    EXPECT_EQ(p->max_names, 3u);
    p = map_claims(R"({"sub":"t1","allow":["*"],"exp":2000,"max_tunnels":100,"max_names":500})",
                   rules, now);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->max_tunnels, 4u);  // a token cannot raise the relay's cap
    EXPECT_EQ(p->max_names, 10u);
    for (const char* bad : {R"({"sub":"t1","allow":["*"],"exp":2000,"max_tunnels":0})",
                            R"({"sub":"t1","allow":["*"],"exp":2000,"max_names":"2"})"})
        EXPECT_EQ(map_claims(bad, rules, now).error().code, token_errc::invalid_claim) << bad;
}

TEST(TokenClaims, AlgorithmNames) {
    EXPECT_EQ(*parse_jwt_algorithm("rs256"), jwt_algorithm::rs256);
    EXPECT_FALSE(parse_jwt_algorithm("none"));
    EXPECT_FALSE(parse_jwt_algorithm("HS512"));
}

}  // namespace
}  // namespace tunnel::relay
