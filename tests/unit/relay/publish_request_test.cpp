// The access mode on the wire (the tcpip-forward bind address): the client's
// encoding round-trips through the relay's parser, hostile bind addresses are
// refused, and resolve_access applies the operator's config and the token's
// `access` claim.
#include "relay/publish_request.hpp"

#include <crypt.h>
#include <gtest/gtest.h>

namespace tunnel::relay {
namespace {

std::string bcrypt(const std::string& password) {
    char setting[CRYPT_GENSALT_OUTPUT_SIZE] = {};
    crypt_gensalt_rn("$2b$", 5, nullptr, 0, setting, sizeof setting);
    crypt_data data{};
    return crypt_rn(password.c_str(), setting, &data, sizeof data);
}

access_policy mode(access_mode m) {
    access_policy p;
    p.mode = m;
    return p;
}

TEST(PublishRequest, BareNameAsked) {
    auto r = parse_publish_request("LLM");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->name, "llm");
    EXPECT_FALSE(r->access);
    EXPECT_EQ(encode_publish_request("llm", std::nullopt), "llm");
}

TEST(PublishRequest, EveryModeRoundTrips) {
    access_policy ip = mode(access_mode::ip);
    ip.allow_ips = *ip_allow_list::parse({"10.0.0.0/8", "2001:db8::/32"});
    access_policy basic = mode(access_mode::basic);
    basic.users = std::make_shared<const htpasswd>(*htpasswd::from_entries(
        {{"alice", bcrypt("a")}, {"bob.b@example.com", bcrypt("b")}}, "test"));
    for (const auto& p : {mode(access_mode::public_), mode(access_mode::token), ip, basic}) {
        const auto wire = encode_publish_request("llm", p);
        auto back = parse_publish_request(wire);
        ASSERT_TRUE(back) << wire << ": " << back.error().message;
        EXPECT_EQ(back->name, "llm");
        ASSERT_TRUE(back->access);
        EXPECT_EQ(*back->access, p) << wire;
    }
    EXPECT_EQ(encode_publish_request("llm", mode(access_mode::token)), "llm;access=token");
    EXPECT_EQ(encode_publish_request("api", ip), "api;access=ip;ip=10.0.0.0/8,2001:db8::/32");
    // What plain OpenSSH sends for -R 'llm;access=token:80:...'.
    EXPECT_EQ(parse_publish_request("llm;access=token")->access->mode, access_mode::token);
}

TEST(PublishRequest, HostileBindAddressesRefused) {
    const auto h = bcrypt("pw");
    for (std::string bad : std::vector<std::string>{
             "",
             ";access=token",
             "llm;",
             "llm;access",
             "llm;=token",
             "llm;access=",
             "llm;access=Token",
             "llm;access=token;access=public",  // repeated
             "llm;access=token;ip=10.0.0.0/8",  // ip= without access=ip
             "llm;access=ip",                   // no networks
             "llm;access=ip;ip=10.0.0.1/8",     // host bits
             "llm;access=ip;ip=10.0.0.0/8;ip=11.0.0.0/8",
             "llm;access=basic",                       // no users
             "llm;access=basic;user=alice",            // no hash
             "llm;access=basic;user=alice:plaintext",  // refused hash
             "llm;access=basic;user=al ice:" + h,
             "llm;access=basic;user=alice:" + h + ";user=alice:" + h,  // duplicate
             "llm;access=token;user=alice:" + h,
             "llm;ip=10.0.0.0/8",  // parameters need access=
             "llm;access=token;future=1",
             "llm--acme;access=token",  // not a label
             "l/lm",
             "llm\n;access=token",
             std::string("llm\0;access=public", 18),
             "llm;access=public" + std::string(20000, ' '),
         }) {
        auto r = parse_publish_request(bad);
        EXPECT_FALSE(r) << "accepted: " << bad.substr(0, 60);
        if (!r && bad.find(h) != std::string::npos) {
            EXPECT_EQ(r.error().message.find(h), std::string::npos) << "echoed a hash";
        }
    }
    std::string many = "llm;access=basic";
    for (int i = 0; i < 65; ++i) many += ";user=u" + std::to_string(i) + ":" + h;
    auto too_many = parse_publish_request(many);
    ASSERT_FALSE(too_many);
    EXPECT_NE(too_many.error().message.find("more than 64 users"), std::string::npos);
}

TEST(ResolveAccess, TokenClaimNarrowsThePublishersChoice) {
    auto bare = *parse_publish_request("llm");
    auto token = *parse_publish_request("llm;access=token");
    EXPECT_EQ(resolve_access(bare, access_modes::all(), nullptr)->mode, access_mode::public_);
    EXPECT_EQ(resolve_access(token, access_modes::all(), nullptr)->mode, access_mode::token);

    access_modes only_token;
    only_token.add(access_mode::token);
    auto no_public = resolve_access(bare, only_token, nullptr);
    ASSERT_FALSE(no_public);
    EXPECT_NE(no_public.error().message.find("--access"), std::string::npos);
    EXPECT_NE(no_public.error().message.find("token"), std::string::npos);
    EXPECT_TRUE(resolve_access(token, only_token, nullptr));

    access_modes only_public;
    only_public.add(access_mode::public_);
    auto not_allowed = resolve_access(token, only_public, nullptr);
    ASSERT_FALSE(not_allowed);
    EXPECT_NE(not_allowed.error().message.find("does not allow access token"), std::string::npos)
        << not_allowed.error().message;
}

TEST(ResolveAccess, TheOperatorsConfigWins) {
    access_policy configured = mode(access_mode::ip);
    configured.allow_ips = *ip_allow_list::parse({"10.0.0.0/8"});
    auto bare = *parse_publish_request("llm");
    auto r = resolve_access(bare, access_modes::none(), &configured);
    ASSERT_TRUE(r) << "the operator's choice does not need the token's permission";
    EXPECT_EQ(*r, configured);
    EXPECT_TRUE(resolve_access(*parse_publish_request("llm;access=ip;ip=10.0.0.0/8"),
                               access_modes::all(), &configured));
    auto other = resolve_access(*parse_publish_request("llm;access=public"), access_modes::all(),
                                &configured);
    ASSERT_FALSE(other) << "a publisher cannot open up what the operator closed";
    EXPECT_NE(other.error().message.find("configuration sets access ip"), std::string::npos);
    EXPECT_FALSE(resolve_access(*parse_publish_request("llm;access=ip;ip=0.0.0.0/0"),
                                access_modes::all(), &configured));
}

TEST(AccessModes, ParseAndPrint) {
    auto m = parse_access_modes("token, basic", "--access");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->to_string(), "token, basic");
    EXPECT_EQ(access_modes::all().to_string(), "public, token, basic, ip");
    EXPECT_EQ(access_modes::none().to_string(), "none");
    EXPECT_FALSE(parse_access_modes("", "--access"));
    EXPECT_FALSE(parse_access_modes(",", "--access"));
    auto bad = parse_access_modes("token,private", "--access");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("--access: \"private\" is not an access mode"),
              std::string::npos)
        << bad.error().message;
}

}  // namespace
}  // namespace tunnel::relay
