#include "relay/relay_profile.hpp"

#include <gtest/gtest.h>

namespace tunnel::relay {
namespace {

using namespace std::chrono_literals;

relay_flag_overrides secret(std::string file = "/run/dev.secret") {
    relay_flag_overrides o;
    o.jwt_secret_file = std::move(file);
    return o;
}

TEST(RelayProfile, Names) {
    EXPECT_EQ(*parse_relay_profile("dev"), relay_profile::dev);
    EXPECT_EQ(*parse_relay_profile("prod"), relay_profile::prod);
    auto bad = parse_relay_profile("production");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("use dev"), std::string::npos) << bad.error().message;
}

// `--profile dev` is the preset `--dev` runs: the same effective settings.
TEST(RelayProfile, DevIsWhatDevModeRuns) {
    auto dev = dev_config("127.0.0.1:8080", "127.0.0.1:9090", "/run/dev.secret");
    ASSERT_TRUE(dev) << dev.error().message;
    auto profile = profile_relay_config(relay_profile::dev, "", "profile dev", {}, secret());
    ASSERT_TRUE(profile) << profile.error().message;
    EXPECT_EQ(describe(*profile), describe(*dev));
}

TEST(RelayProfile, DevNeedsAJwtKey) {
    auto c = profile_relay_config(relay_profile::dev, "", "profile dev", {}, {});
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message.find("jwt: set exactly one"), std::string::npos)
        << c.error().message;
}

TEST(RelayProfile, ProdIsACompleteProductionConfig) {
    auto c = profile_relay_config(relay_profile::prod, "", "profile prod", {}, {});
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->listen.to_string(), "0.0.0.0:8443");
    ASSERT_TRUE(c->tls);
    EXPECT_EQ(c->tls->cert_file, "/etc/tunnel/tls/relay.crt");
    EXPECT_EQ(c->admin_listen.to_string(), "127.0.0.1:9090");
    EXPECT_EQ(c->host_key_file, "/var/lib/tunnel/relay_host_ed25519");
    EXPECT_EQ(c->audit_log, "/var/log/tunnel/audit.jsonl");
    EXPECT_EQ(c->audit.max_bytes, 100u << 20);
    EXPECT_EQ(c->jwt.secret_file, "/etc/tunnel/jwt.secret");
    EXPECT_EQ(c->limits.tenant_rps, limits_config{}.tenant_rps);
}

TEST(RelayProfile, TheFileOverridesKeyByKey) {
    auto c = profile_relay_config(relay_profile::prod,
                                  "limits:\n  tenant_rps: 7\nbreaker: {cooldown: 3s}\n",
                                  "relay.yaml", {}, {});
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->limits.tenant_rps, 7);
    EXPECT_EQ(c->limits.route_rps, limits_config{}.route_rps);  // the rest of limits stays
    EXPECT_EQ(c->breaker.cooldown, 3s);
    EXPECT_EQ(c->breaker.failures, breaker_config{}.failures);
    EXPECT_TRUE(c->tls);  // sections the file does not name stay the profile's
    EXPECT_EQ(c->audit_log, "/var/log/tunnel/audit.jsonl");
}

TEST(RelayProfile, TlsAndAuditLogCanBeTurnedOff) {
    auto c =
        profile_relay_config(relay_profile::prod, "listen: 127.0.0.1:8443\ntls: ~\naudit_log: ~\n",
                             "relay.yaml", {}, {});
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_FALSE(c->tls);
    EXPECT_TRUE(c->audit_log.empty());
    // Off on a public address is refused like any plain-HTTP config.
    auto open = profile_relay_config(relay_profile::prod, "tls: ~\n", "relay.yaml", {}, {});
    ASSERT_FALSE(open);
    EXPECT_NE(open.error().message.find("plain HTTP on 0.0.0.0 is not loopback"), std::string::npos)
        << open.error().message;
}

TEST(RelayProfile, AJwtKeySourceReplacesTheProfiles) {
    auto c = profile_relay_config(relay_profile::prod,
                                  "jwt:\n  public_key_file: /etc/tunnel/jwt.pub\n  algorithm: "
                                  "ES256\n",
                                  "relay.yaml", {}, {});
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_TRUE(c->jwt.secret_file.empty());
    EXPECT_EQ(c->jwt.public_key_file, "/etc/tunnel/jwt.pub");
    EXPECT_EQ(c->jwt.algorithm, jwt_algorithm::es256);
}

TEST(RelayProfile, UnknownKeysAreStillErrors) {
    auto c = profile_relay_config(relay_profile::prod, "limits:\n  tenant_rsp: 7\n", "relay.yaml",
                                  {}, {});
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message.find("relay.yaml: limits.tenant_rsp: unknown key"),
              std::string::npos)
        << c.error().message;
}

TEST(RelayProfile, SetOverridesTheFile) {
    auto c = profile_relay_config(relay_profile::prod, "limits:\n  tenant_rps: 7\n", "relay.yaml",
                                  {"limits.tenant_rps=9", "limits.route_burst=50",
                                   "admin.allowed_hosts=[a.example.com]", "workers=3"},
                                  {});
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->limits.tenant_rps, 9);
    EXPECT_EQ(c->limits.route_burst, 50);
    EXPECT_EQ(c->admin.allowed_hosts, std::vector<std::string>{"a.example.com"});
    EXPECT_EQ(c->workers, 3u);
}

TEST(RelayProfile, BadSetsSayWhatIsWrong) {
    auto no_eq = apply_sets("", {"limits.tenant_rps"});
    ASSERT_FALSE(no_eq);
    EXPECT_NE(no_eq.error().message.find("write KEY=VALUE"), std::string::npos);
    auto bad_key = apply_sets("", {"limits..x=1"});
    ASSERT_FALSE(bad_key);
    EXPECT_NE(bad_key.error().message.find("is not a config key"), std::string::npos);
    auto bad_value = apply_sets("", {"limits.tenant_rps=[1"});
    ASSERT_FALSE(bad_value);
    EXPECT_NE(bad_value.error().message.find("is not YAML"), std::string::npos);
    // A misspelt key is caught by the config's own strict reading.
    auto c = profile_relay_config(relay_profile::prod, "", "profile prod", {"limits.nope=1"}, {});
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message.find("limits.nope: unknown key"), std::string::npos)
        << c.error().message;
    auto wrong =
        profile_relay_config(relay_profile::prod, "", "profile prod", {"limits.tenant_rps=-3"}, {});
    ASSERT_FALSE(wrong);
    EXPECT_NE(wrong.error().message.find("limits.tenant_rps"), std::string::npos);
}

TEST(RelayProfile, FlagsWinOverTheFile) {
    relay_flag_overrides o = secret("/run/flag.secret");
    o.listen = "127.0.0.1:7001";
    o.admin_listen = "127.0.0.1:7002";
    auto c = profile_relay_config(relay_profile::dev,
                                  "listen: 127.0.0.1:6001\njwt: {secret_file: /run/file.secret}\n",
                                  "dev.yaml", {}, o);
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->listen.to_string(), "127.0.0.1:7001");
    EXPECT_EQ(c->admin_listen.to_string(), "127.0.0.1:7002");
    EXPECT_EQ(c->jwt.secret_file, "/run/flag.secret");
    auto bad = profile_relay_config(relay_profile::dev, "", "profile dev", {},
                                    relay_flag_overrides{"nowhere", "", "/s"});
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("--listen"), std::string::npos);
}

// Without a profile nothing changed: the file must name what the relay needs.
TEST(RelayProfile, WithoutAProfileTheFileIsComplete) {
    auto c = parse_relay_config("listen: 127.0.0.1:1\n", "relay.yaml");
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message.find("host_key_file: is required"), std::string::npos);
    EXPECT_NE(c.error().message.find("jwt: is required"), std::string::npos);
    auto null_tls = parse_relay_config(
        "listen: 0.0.0.0:1\ntls: ~\nhost_key_file: /k\njwt: {secret_file: /s}\n", "relay.yaml");
    ASSERT_FALSE(null_tls);  // `tls: ~` means nothing without a profile: still plain on 0.0.0.0
}

}  // namespace
}  // namespace tunnel::relay
