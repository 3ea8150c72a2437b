// check_visitor for each access mode with real tokens (minted and verified
// through libjwt) and real password hashes (libcrypt), the one-time login
// exchange, the visitor cookie, the credential removed before the origin, and
// hostile requests: wrong tokens, planted and look-alike cookies, duplicate
// credentials.
#include "relay/visitor_access.hpp"

#include <crypt.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/encoding.hpp"
#include "relay/token_minter.hpp"
#include "relay/token_verifier.hpp"
#include "relay/visitor_token.hpp"

namespace tunnel::relay {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string make_hash(const std::string& password) {
    char setting[CRYPT_GENSALT_OUTPUT_SIZE] = {};
    crypt_gensalt_rn("$2b$", 5, nullptr, 0, setting, sizeof setting);
    crypt_data data{};
    return crypt_rn(password.c_str(), setting, &data, sizeof data);
}

const std::string* field(const std::vector<http_field>& fields, std::string_view name) {
    for (const auto& f : fields)
        if (f.name == name) return &f.value;
    return nullptr;
}

class VisitorAccess : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() /
               fs::path("visitor_access_" + std::to_string(::getpid()) + "_" +
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(dir_);
        secret_ = (dir_ / "visitor.secret").string();
        std::ofstream(secret_) << "visitor-secret-of-at-least-32-bytes!\n";
        ::chmod(secret_.c_str(), 0600);
        auto v = token_verifier::load(visitor_verifier_options(secret_, 30s));
        ASSERT_TRUE(v) << v.error().message;
        verifier_.emplace(std::move(*v));
        keys_.tokens = &*verifier_;
        token_policy_.mode = access_mode::token;
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::string visitor(const std::string& tenant = "acme", const std::string& service = "llm",
                        std::chrono::milliseconds ttl = 1h) {
        auto t = mint_visitor_token({secret_, tenant, {service}, ttl}, now_);
        EXPECT_TRUE(t) << t.error().message;
        return t ? t->token : "";
    }
    visitor_decision check(const std::vector<http_field>& fields, const access_policy& policy,
                           std::string_view target = "/", bool tls = true,
                           std::string_view method = "GET", std::string_view peer = "203.0.113.9",
                           bool host_routed = true) {
        visitor_request r;
        r.tenant = "acme";
        r.name = "llm";
        r.method = method;
        r.target = target;
        r.fields = fields;
        r.peer_ip = peer;
        r.tls = tls;
        r.host_routed = host_routed;
        return check_visitor(r, policy, keys_, now_ + 1min);
    }

    fs::path dir_;
    std::string secret_;
    std::optional<token_verifier> verifier_;
    visitor_keys keys_;
    access_policy token_policy_;
    const std::chrono::system_clock::time_point now_{std::chrono::seconds(1'800'000'000)};
};

TEST_F(VisitorAccess, PublicLetsEveryoneInAndStillStripsVisitorCookies) {
    auto d = check({}, access_policy{});
    EXPECT_TRUE(d.allowed());
    EXPECT_EQ(d.principal, "public");
    std::vector<http_field> fields{{"Cookie", "tunnel_visitor=x.y.z; theme=dark"}};
    strip_visitor_credentials(fields, access_policy{}, d);
    ASSERT_EQ(fields.size(), 1u);
    EXPECT_EQ(fields[0].value, "theme=dark");
}

TEST_F(VisitorAccess, IpModeChecksTheTcpPeerOnly) {
    access_policy p;
    p.mode = access_mode::ip;
    p.allow_ips = *ip_allow_list::parse({"10.0.0.0/8", "2001:db8::/32"});
    EXPECT_TRUE(check({}, p, "/", true, "GET", "10.1.2.3").allowed());
    EXPECT_TRUE(check({}, p, "/", true, "GET", "::ffff:10.1.2.3").allowed());
    EXPECT_TRUE(check({}, p, "/", true, "GET", "2001:db8::5").allowed());
    auto d = check({{"X-Forwarded-For", "10.1.2.3"}, {"X-Real-IP", "10.1.2.3"}}, p, "/", true,
                   "GET", "203.0.113.9");
    EXPECT_FALSE(d.allowed()) << "forwarding headers from the caller are not believed";
    EXPECT_EQ(d.status, 403);
    EXPECT_EQ(d.code, "ip_not_allowed");
    EXPECT_NE(d.message.find("203.0.113.9"), std::string::npos);
    EXPECT_EQ(check({}, p, "/", true, "GET", "not an address").status, 403);
    EXPECT_EQ(check({}, p, "/", true, "GET", "").status, 403);
}

TEST_F(VisitorAccess, BasicModeChallengesVerifiesAndStrips) {
    access_policy p;
    p.mode = access_mode::basic;
    p.users = std::make_shared<const htpasswd>(
        *htpasswd::from_entries({{"alice", make_hash("s3cret: with colon")}}, "test"));
    auto basic = [](std::string_view user_pass) {
        return "Basic " + core::base64_encode(user_pass);
    };
    auto none = check({}, p);
    EXPECT_EQ(none.status, 401);
    EXPECT_EQ(none.code, "no_credential");
    ASSERT_TRUE(field(none.headers, "WWW-Authenticate"));
    EXPECT_EQ(*field(none.headers, "WWW-Authenticate"),
              "Basic realm=\"acme/llm\", charset=\"UTF-8\"");

    EXPECT_EQ(check({{"Authorization", basic("alice:wrong")}}, p).code, "bad_credential");
    EXPECT_EQ(check({{"Authorization", basic("mallory:s3cret: with colon")}}, p).code,
              "bad_credential");
    for (std::string junk :
         std::vector<std::string>{"Basic", "Basic !!!!", "Basic " + core::base64_encode("no-colon"),
                                  "Basic " + core::base64_encode(":nouser"), "Bearer a.b.c",
                                  "Basic YWxpY2U6czNjcmV0", "Digest username=alice"})
        EXPECT_EQ(check({{"Authorization", junk}}, p).status, 401) << junk;

    password_cache cache;
    keys_.passwords = &cache;
    std::vector<http_field> fields{
        {"Host", "llm--acme.example.com"},
        {"authorization", "basic " + core::base64_encode("alice:s3cret: with colon")},
        {"Accept", "*/*"}};
    auto ok = check(fields, p);
    ASSERT_TRUE(ok.allowed()) << ok.message;
    EXPECT_EQ(ok.principal, "user alice");
    EXPECT_EQ(ok.credential, visitor_credential::basic);
    EXPECT_TRUE(check(fields, p).allowed());
    EXPECT_EQ(cache.hashes_computed(), 1u) << "the second request came from the cache";
    strip_visitor_credentials(fields, p, ok);
    ASSERT_EQ(fields.size(), 2u);
    EXPECT_EQ(fields[0].name, "Host");
    EXPECT_EQ(fields[1].name, "Accept");

    auto twice = check({{"Authorization", basic("alice:s3cret: with colon")},
                        {"Authorization", basic("alice:wrong")}},
                       p);
    EXPECT_EQ(twice.status, 400);
    EXPECT_EQ(twice.code, "ambiguous_credential");
    access_policy empty;
    empty.mode = access_mode::basic;
    EXPECT_EQ(check({}, empty).status, 503);
}

TEST_F(VisitorAccess, BearerTokenAdmitsItsServiceOnly) {
    const auto token = visitor();
    std::vector<http_field> fields{{"Authorization", "Bearer " + token}, {"Accept", "*/*"}};
    auto ok = check(fields, token_policy_);
    ASSERT_TRUE(ok.allowed()) << ok.message;
    EXPECT_EQ(ok.credential, visitor_credential::bearer);
    EXPECT_EQ(ok.principal.rfind("token ", 0), 0u);
    strip_visitor_credentials(fields, token_policy_, ok);
    ASSERT_EQ(fields.size(), 1u) << "the visitor token never reaches the origin";
    EXPECT_EQ(fields[0].name, "Accept");

    EXPECT_TRUE(check({{"Authorization", "bearer   " + token}}, token_policy_).allowed());

    auto other_service =
        check({{"Authorization", "Bearer " + visitor("acme", "web")}}, token_policy_);
    EXPECT_EQ(other_service.status, 403);
    EXPECT_EQ(other_service.code, "wrong_service");
    EXPECT_EQ(check({{"Authorization", "Bearer " + visitor("evil", "llm")}}, token_policy_).code,
              "wrong_service");

    auto expired =
        check({{"Authorization", "Bearer " + visitor("acme", "llm", 10s)}}, token_policy_);
    EXPECT_EQ(expired.status, 401);
    EXPECT_EQ(expired.code, "expired");
    ASSERT_TRUE(field(expired.headers, "WWW-Authenticate"));
    EXPECT_NE(field(expired.headers, "WWW-Authenticate")->find("error=\"invalid_token\""),
              std::string::npos);

    mint_request tunnel;
    tunnel.secret_file = secret_;
    tunnel.tenant = "acme";
    tunnel.allow = {"llm"};
    tunnel.ttl = 1h;
    auto publisher = mint_token(tunnel, now_);
    ASSERT_TRUE(publisher);
    auto wrong_type = check({{"Authorization", "Bearer " + publisher->token}}, token_policy_);
    EXPECT_EQ(wrong_type.status, 401);
    EXPECT_EQ(wrong_type.code, "wrong_token_type");

    auto none = check({}, token_policy_);
    EXPECT_EQ(none.status, 401);
    EXPECT_EQ(none.code, "no_credential");
    EXPECT_EQ(*field(none.headers, "WWW-Authenticate"), "Bearer realm=\"acme/llm\"");

    auto twice = check({{"Authorization", "Bearer " + token}, {"Authorization", "Bearer x.y.z"}},
                       token_policy_);
    EXPECT_EQ(twice.status, 400);

    keys_.tokens = nullptr;
    EXPECT_EQ(check({{"Authorization", "Bearer " + token}}, token_policy_).status, 503);
}

TEST_F(VisitorAccess, CookieAdmitsAndOnlyTheVisitorCookieIsRemoved) {
    const auto token = visitor();
    // The origin's own API key rides in Authorization: it is not the visitor's, so it stays.
    std::vector<http_field> fields{
        {"Cookie", "session=abc; __Host-tunnel_visitor=" + token + "; theme=dark"},
        {"Authorization", "Bearer sk-origin-api-key"},
        {"Cookie", "__Host-tunnel_visitor=" + token}};
    auto ok = check(fields, token_policy_);
    ASSERT_TRUE(ok.allowed()) << ok.message;
    EXPECT_EQ(ok.credential, visitor_credential::cookie);
    strip_visitor_credentials(fields, token_policy_, ok);
    ASSERT_EQ(fields.size(), 2u);
    EXPECT_EQ(fields[0].value, "session=abc; theme=dark");
    EXPECT_EQ(fields[1].value, "Bearer sk-origin-api-key");

    // Plain HTTP (dev) uses the unprefixed name, and only that one.
    EXPECT_TRUE(
        check({{"Cookie", "tunnel_visitor=" + token}}, token_policy_, "/", false).allowed());
    EXPECT_FALSE(
        check({{"Cookie", "__Host-tunnel_visitor=" + token}}, token_policy_, "/", false).allowed());
    EXPECT_TRUE(
        check({{"Cookie", "__Host-tunnel_visitor=\"" + token + "\""}}, token_policy_).allowed());
}

TEST_F(VisitorAccess, LookAlikeAndPlantedCookiesAreRefused) {
    const auto token = visitor();
    for (std::string cookie : std::vector<std::string>{
             "tunnel_visitor=" + token,          // the plain-HTTP name, planted on a TLS host
             "__host-tunnel_visitor=" + token,   // names are case-sensitive
             "x__Host-tunnel_visitor=" + token,  //
             "__Host-tunnel_visitor " + token,   // no '='
             "__Host-tunnel_visitor=" + token.substr(0, token.size() - 2),  // cut signature
             "__Host-tunnel_visitor=" + visitor("acme", "web"),             // another service
             "__Host-tunnel_visitor=" + token + ";x",  // fine: pair ends at ';'
             "__Host-tunnel_visitor=a.b.c; __Host-tunnel_visitor=d.e.f; "
             "__Host-tunnel_visitor=g.h.i; __Host-tunnel_visitor=j.k.l; __Host-tunnel_visitor=" +
                 token}) {  // only the first 4 candidates are tried
        auto d = check({{"Cookie", cookie}}, token_policy_);
        if (cookie.find(";x") != std::string::npos) {
            EXPECT_TRUE(d.allowed()) << cookie;
            continue;
        }
        EXPECT_FALSE(d.allowed()) << cookie;
        EXPECT_EQ(d.message.find(token), std::string::npos) << "never echo a token";
    }
    // Header-splitting attempts inside a cookie value are not JWT-shaped: skipped.
    EXPECT_TRUE(visitor_cookies(
                    std::vector<http_field>{{"Cookie", "__Host-tunnel_visitor=a.b.c\r\nX-Evil: 1"},
                                            {"Cookie", "__Host-tunnel_visitor=a.b.c d"},
                                            {"Cookie", "__Host-tunnel_visitor=a.b"}},
                    true)
                    .empty());
}

TEST_F(VisitorAccess, LoginSetsAHostOnlyCookieAndRedirects) {
    const auto token = visitor();
    auto d = check({}, token_policy_, "/_tunnel/login?token=" + token);
    ASSERT_EQ(d.verdict, visitor_verdict::login) << d.message;
    EXPECT_EQ(d.status, 303);
    EXPECT_EQ(*field(d.headers, "Location"), "/");
    // Minted at now_, checked at now_ + 1 min: 59 minutes left.
    EXPECT_EQ(*field(d.headers, "Set-Cookie"),
              "__Host-tunnel_visitor=" + token +
                  "; Max-Age=3540; Path=/; HttpOnly; SameSite=Lax; Secure");
    EXPECT_EQ(field(d.headers, "Set-Cookie")->find("Domain"), std::string::npos);
    EXPECT_EQ(*field(d.headers, "Cache-Control"), "no-store");
    EXPECT_EQ(*field(d.headers, "Referrer-Policy"), "no-referrer");

    auto plain = check({}, token_policy_, "/_tunnel/login?x=1&token=" + token, false);
    ASSERT_EQ(plain.status, 303);
    EXPECT_EQ(*field(plain.headers, "Set-Cookie"),
              "tunnel_visitor=" + token + "; Max-Age=3540; Path=/; HttpOnly; SameSite=Lax");

    // The cookie it set admits the next request.
    EXPECT_TRUE(check({{"Cookie", "__Host-tunnel_visitor=" + token}}, token_policy_).allowed());

    auto out = check({}, token_policy_, "/_tunnel/logout");
    EXPECT_EQ(out.status, 303);
    EXPECT_NE(field(out.headers, "Set-Cookie")->find("Max-Age=0"), std::string::npos);
}

TEST_F(VisitorAccess, LoginRefusals) {
    const auto token = visitor();
    auto path_routed =
        check({}, token_policy_, "/_tunnel/login?token=" + token, true, "GET", "1.2.3.4", false);
    EXPECT_EQ(path_routed.status, 403);
    EXPECT_EQ(path_routed.code, "login_needs_host_routing");
    EXPECT_EQ(check({}, token_policy_, "/_tunnel/login?token=" + token, true, "POST").status, 405);
    for (std::string target :
         std::vector<std::string>{"/_tunnel/login", "/_tunnel/login?",
                                  "/_tunnel/login?token=", "/_tunnel/login?tok=" + token,
                                  "/_tunnel/login?token=" + token + "&token=" + token,
                                  "/_tunnel/login?token=" + token + "%0d%0aSet-Cookie:x=y",
                                  "/_tunnel/login?token=<script>"})
        EXPECT_EQ(check({}, token_policy_, target).status, 400) << target;
    auto wrong = check({}, token_policy_, "/_tunnel/login?token=" + visitor("acme", "web"));
    EXPECT_EQ(wrong.status, 403);
    EXPECT_TRUE(wrong.headers.empty() || !field(wrong.headers, "Set-Cookie"));
    auto forged = check({}, token_policy_, "/_tunnel/login?token=" + token + "x");
    EXPECT_EQ(forged.status, 401);
    EXPECT_FALSE(field(forged.headers, "Set-Cookie"));
    EXPECT_EQ(render_visitor_response(forged).find(token), std::string::npos);
    // Other /_tunnel/ paths belong to the origin (after the usual check).
    EXPECT_EQ(check({}, token_policy_, "/_tunnel/other").code, "no_credential");
}

TEST_F(VisitorAccess, RenderedResponseIsCompleteHttp) {
    auto d = check({}, token_policy_);
    const auto text = render_visitor_response(d);
    EXPECT_EQ(text.rfind("HTTP/1.1 401 Unauthorized\r\n", 0), 0u) << text;
    EXPECT_NE(text.find("\r\nWWW-Authenticate: Bearer realm=\"acme/llm\"\r\n"), std::string::npos);
    EXPECT_NE(text.find("\r\nCache-Control: no-store\r\n"), std::string::npos);
    EXPECT_NE(text.find("\r\nConnection: close\r\n"), std::string::npos);
    const auto body_at = text.find("\r\n\r\n");
    ASSERT_NE(body_at, std::string::npos);
    const auto body = text.substr(body_at + 4);
    EXPECT_NE(text.find(fmt::format("Content-Length: {}\r\n", body.size())), std::string::npos);
    auto j = nlohmann::json::parse(body);
    EXPECT_EQ(j["error"], "no_credential");
    EXPECT_FALSE(j["message"].get<std::string>().empty());
}

TEST(VisitorParsing, AuthorizationSchemes) {
    auto b = parse_basic_authorization("Basic " + core::base64_encode("a:b:c"));
    ASSERT_TRUE(b);
    EXPECT_EQ(b->user, "a");
    EXPECT_EQ(b->password, "b:c");
    EXPECT_FALSE(parse_basic_authorization("Basic " + core::base64_encode("a:b") + "="));
    EXPECT_FALSE(parse_basic_authorization("Basic " + std::string(5000, 'A')));
    EXPECT_FALSE(parse_basic_authorization("Basicx " + core::base64_encode("a:b")));
    EXPECT_FALSE(
        parse_basic_authorization("Basic " + core::base64_encode(std::string("a\0b:c", 5))));
    EXPECT_EQ(parse_bearer_authorization("Bearer a.b.c").value_or(""), "a.b.c");
    EXPECT_FALSE(parse_bearer_authorization("Bearer sk-not-a-jwt"));
    EXPECT_FALSE(parse_bearer_authorization("Bearer a.b.c d"));
    EXPECT_FALSE(parse_bearer_authorization("Bearera.b.c"));
    EXPECT_EQ(login_token("/_tunnel/login?a=b&token=x.y.z&c").value_or(""), "x.y.z");
    EXPECT_FALSE(login_token("/_tunnel/loginx?token=x.y.z"));
}

}  // namespace
}  // namespace tunnel::relay
