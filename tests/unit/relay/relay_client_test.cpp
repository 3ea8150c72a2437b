// tunnel connect's pure parts: --expose specs, the tenant from a token,
// public URLs from the relay's 101 headers, supervisor options.
#include <gtest/gtest.h>

#include "relay/publish_request.hpp"
#include "relay/relay_client.hpp"

namespace tunnel::relay {
namespace {

// header.payload.signature with payload {"sub":"<sub>","allow":["*"],"exp":4102444800}
std::string token_with(const std::string& payload_b64url) {
    return "eyJhbGciOiJIUzI1NiJ9." + payload_b64url + ".c2ln";
}

TEST(Expose, ParsesNameAndTarget) {
    auto e = parse_expose("LLM=127.0.0.1:11434");
    ASSERT_TRUE(e) << e.error().message;
    EXPECT_EQ(e->name, "llm");
    EXPECT_EQ(e->target.host, "127.0.0.1");
    EXPECT_EQ(e->target.port, 11434);

    auto v6 = parse_expose("web=[::1]:8080");
    ASSERT_TRUE(v6) << v6.error().message;
    EXPECT_EQ(v6->target.host, "::1");
    EXPECT_EQ(v6->target.port, 8080);

    auto bare = parse_expose("api=3000");
    ASSERT_TRUE(bare) << bare.error().message;
    EXPECT_EQ(bare->target.to_string(), "127.0.0.1:3000");
}

TEST(Expose, RefusesBadNamesAndTargets) {
    for (const char* text :
         {"llm", "=127.0.0.1:1", "-a=127.0.0.1:1", "a-=127.0.0.1:1", "a_b=127.0.0.1:1",
          "a.b=127.0.0.1:1", "llm=127.0.0.1", "llm=127.0.0.1:0", "llm=host:port",
          "llm=", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=1"}) {
        auto e = parse_expose(text);
        ASSERT_FALSE(e) << text;
        EXPECT_EQ(e.error().code, core::errc::invalid_argument) << text;
        EXPECT_NE(e.error().message.find("--expose"), std::string::npos) << e.error().message;
    }
}

TEST(TenantOfToken, ReadsSubWithoutVerifying) {
    // {"sub":"acme","allow":["*"]}
    auto t = tenant_of_token(token_with("eyJzdWIiOiJhY21lIiwiYWxsb3ciOlsiKiJdfQ"));
    ASSERT_TRUE(t) << t.error().message;
    EXPECT_EQ(*t, "acme");
}

TEST(TenantOfToken, RefusesWhatIsNotAJwtWithATenant) {
    EXPECT_FALSE(tenant_of_token("not-a-jwt"));
    EXPECT_FALSE(tenant_of_token("a.b.c.d"));
    EXPECT_FALSE(tenant_of_token(token_with("!!!")));
    EXPECT_FALSE(tenant_of_token(token_with("eyJhbGxvdyI6WyIqIl19")));  // {"allow":["*"]}: no sub
    EXPECT_FALSE(tenant_of_token(token_with("eyJzdWIiOiJBIEIifQ")));    // {"sub":"A B"}
    auto e = tenant_of_token("secret-looking.value");
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().message.find("secret-looking"), std::string::npos) << "never echo a token";
}

TEST(PublicUrls, PathAndHostRouting) {
    transport::ws_attach_info a;
    a.tenant = "acme";
    a.public_url = "https://relay.example.com:8443/t/acme/";
    EXPECT_EQ(public_urls(a, "llm"),
              std::vector<std::string>{"https://relay.example.com:8443/t/acme/llm/"});
    a.domain = "tunnels.example.com";
    EXPECT_EQ(public_urls(a, "llm"),
              (std::vector<std::string>{"https://llm--acme.tunnels.example.com:8443/",
                                        "https://relay.example.com:8443/t/acme/llm/"}));
    a.public_url = "http://127.0.0.1:8080/t/acme";
    a.domain.clear();
    EXPECT_EQ(public_urls(a, "web"), std::vector<std::string>{"http://127.0.0.1:8080/t/acme/web/"});
    EXPECT_TRUE(public_urls({}, "web").empty());
}

TEST(PublicUrls, TheRelaysTemplateGivesOneUrlPerName) {
    transport::ws_attach_info a;
    a.tenant = "acme";
    a.domain = "relay.example.com";
    a.public_url = "https://{name}--acme.relay.example.com/";
    EXPECT_EQ(public_urls(a, "llm"),
              std::vector<std::string>{"https://llm--acme.relay.example.com/"});
    a.domain.clear();
    a.public_url = "http://127.0.0.1:8080/t/acme/{name}/";
    EXPECT_EQ(public_urls(a, "web"), std::vector<std::string>{"http://127.0.0.1:8080/t/acme/web/"});
}

TEST(RelaySupervisorOptions, OneReverseForwardPerNameOnDistinctPorts) {
    relay_client_options o;
    o.url = *transport::parse_ws_url("wss://relay.example.com:8443/v1/tunnel");
    o.ws.token = token_with("eyJzdWIiOiJhY21lIiwiYWxsb3ciOlsiKiJdfQ");
    o.exposes = {*parse_expose("llm=127.0.0.1:11434"), *parse_expose("web=127.0.0.1:8080")};
    o.known_hosts_file = ::testing::TempDir() + "relay_known_hosts";
    o.relay_host_key = "SHA256:abc";
    auto s = relay_supervisor_options(o);
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_EQ(s->target.user, "acme");
    EXPECT_EQ(s->target.host, "relay.example.com");
    EXPECT_EQ(s->target.port, 8443);
    EXPECT_TRUE(static_cast<bool>(s->target.open_stream));
    EXPECT_EQ(s->target.host_key_fingerprint, "SHA256:abc");
    EXPECT_EQ(s->target.user_known_hosts_files, std::vector<std::string>{o.known_hosts_file});
    ASSERT_EQ(s->forwards.size(), 2u);
    EXPECT_EQ(s->forwards[0].listen.host, "llm");
    EXPECT_EQ(s->forwards[1].listen.host, "web");
    EXPECT_NE(s->forwards[0].listen.port, s->forwards[1].listen.port);
    EXPECT_EQ(s->forwards[1].target.port, 8080);
}

TEST(RelaySupervisorOptions, RefusesDuplicatesMissingTokenAndBadPins) {
    relay_client_options o;
    o.url = *transport::parse_ws_url("ws://127.0.0.1:1/v1/tunnel");
    o.ws.token = token_with("eyJzdWIiOiJhY21lIiwiYWxsb3ciOlsiKiJdfQ");
    o.known_hosts_file = ::testing::TempDir() + "relay_known_hosts";
    EXPECT_FALSE(relay_supervisor_options(o));  // nothing exposed
    o.exposes = {*parse_expose("llm=1"), *parse_expose("LLM=2")};
    auto dup = relay_supervisor_options(o);
    ASSERT_FALSE(dup);
    EXPECT_NE(dup.error().message.find("twice"), std::string::npos);
    o.exposes.pop_back();
    o.relay_host_key = "MD5:aa";
    EXPECT_FALSE(relay_supervisor_options(o));
    o.relay_host_key.reset();
    o.ws.token.clear();
    EXPECT_FALSE(relay_supervisor_options(o));
}

TEST(RelaySupervisorOptions, RefusesCleartextTokensToOtherHosts) {
    relay_client_options o;
    o.ws.token = token_with("eyJzdWIiOiJhY21lIiwiYWxsb3ciOlsiKiJdfQ");
    o.exposes = {*parse_expose("llm=1")};
    o.known_hosts_file = ::testing::TempDir() + "relay_known_hosts";
    for (auto url : {"ws://192.0.2.1:1/v1/tunnel", "ws://relay.example.com/v1/tunnel",
                     "ws://[2001:db8::1]:8080/v1/tunnel", "ws://0.0.0.0:1/v1/tunnel",
                     "ws://localhost.example.com/v1/tunnel"}) {
        o.url = *transport::parse_ws_url(url);
        o.ws.allow_plaintext = false;
        auto s = relay_supervisor_options(o);
        ASSERT_FALSE(s) << url;
        EXPECT_NE(s.error().message.find("cleartext"), std::string::npos) << s.error().message;
        EXPECT_NE(s.error().message.find("--allow-plaintext"), std::string::npos);
        EXPECT_NE(s.error().message.find("wss://"), std::string::npos);
        o.ws.allow_plaintext = true;
        EXPECT_TRUE(relay_supervisor_options(o)) << url;
    }
    o.ws.allow_plaintext = false;
    for (auto url : {"ws://127.0.0.1:1/v1/tunnel", "ws://127.9.8.7:1/", "ws://[::1]:1/",
                     "ws://localhost:1/", "wss://relay.example.com/v1/tunnel"}) {
        o.url = *transport::parse_ws_url(url);
        EXPECT_TRUE(relay_supervisor_options(o)) << url;
    }
    EXPECT_TRUE(transport::is_loopback_host("::ffff:127.0.0.1"));
    EXPECT_FALSE(transport::is_loopback_host("::ffff:10.0.0.1"));
    EXPECT_FALSE(transport::is_loopback_host("127.0.0.1.nip.io"));
    EXPECT_TRUE(
        transport::check_plaintext(*transport::parse_ws_url("ws://192.0.2.1/"), false, false))
        << "no token, nothing to leak (ws-connect without --token-file)";
}

TEST(RelayAccess, FlagsGiveEachNameItsAccessOnTheWire) {
    std::vector<expose_spec> exposes{*parse_expose("llm=1"), *parse_expose("web=2"),
                                     *parse_expose("api=3")};
    access_flags f;
    f.access = {"token", "api=ip"};
    f.allow_ips = {"10.0.0.0/8, 192.168.0.0/16", "2001:db8::/32"};
    auto ok = apply_access(exposes, f);
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_EQ(exposes[0].access->mode, access_mode::token);
    EXPECT_EQ(exposes[1].access->mode, access_mode::token);
    EXPECT_EQ(exposes[2].access->mode, access_mode::ip);
    EXPECT_EQ(exposes[2].access->allow_ips.networks().size(), 3u);

    relay_client_options o;
    o.url = *transport::parse_ws_url("wss://relay.example.com/v1/tunnel");
    o.ws.token = token_with("eyJzdWIiOiJhY21lIiwiYWxsb3ciOlsiKiJdfQ");
    o.exposes = exposes;
    o.known_hosts_file = ::testing::TempDir() + "relay_known_hosts";
    auto s = relay_supervisor_options(o);
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_EQ(s->forwards[0].listen.host, "llm;access=token");
    EXPECT_EQ(s->forwards[2].listen.host,
              "api;access=ip;ip=10.0.0.0/8,192.168.0.0/16,2001:db8::/32");
    for (const auto& fw : s->forwards) EXPECT_TRUE(parse_publish_request(fw.listen.host));
}

TEST(RelayAccess, FlagProblemsFailBeforeConnecting) {
    auto fails = [](access_flags f, std::string_view says) {
        std::vector<expose_spec> exposes{*parse_expose("llm=1"), *parse_expose("web=2")};
        auto r = apply_access(exposes, f);
        ASSERT_FALSE(r) << says;
        EXPECT_NE(r.error().message.find(says), std::string::npos) << r.error().message;
    };
    fails({{"tokens"}, {}, {}}, "not an access mode");
    fails({{"token", "public"}, {}, {}}, "given twice");
    fails({{"llm=token", "llm=public"}, {}, {}}, "given twice");
    fails({{"nosuch=token"}, {}, {}}, "no --expose publishes 'nosuch'");
    fails({{"ip"}, {}, {}}, "needs --allow-ip");
    fails({{"basic"}, {}, {}}, "needs --htpasswd");
    fails({{"token"}, {"10.0.0.0/8"}, {}}, "--allow-ip is for names published with --access ip");
    fails({{"ip"}, {"10.0.0.1/8"}, {}}, "did you mean 10.0.0.0/8");
    fails({{"basic"}, {}, "/nonexistent/htpasswd"}, "--htpasswd");
    std::vector<expose_spec> untouched{*parse_expose("llm=1")};
    EXPECT_TRUE(apply_access(untouched, {}));
    EXPECT_FALSE(untouched[0].access) << "no --access: the relay decides";
}

}  // namespace
}  // namespace tunnel::relay
