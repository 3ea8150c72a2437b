#include "relay/relay_config.hpp"

#include <gtest/gtest.h>

namespace tunnel::relay {
namespace {

using namespace std::chrono_literals;

constexpr const char* full = R"(
listen: 0.0.0.0:8443
tls:
  cert_file: /etc/tunnel/relay.crt
  key_file: /etc/tunnel/relay.key
admin_listen: 127.0.0.1:9091
admin:
  token_file: /etc/tunnel/admin.token
  allowed_hosts: [Relay-Admin.internal, metrics.example.com]
domain: Relay.Example.com
host_key_file: /var/lib/tunnel/host_ed25519
audit_log: /var/log/tunnel/audit.jsonl
audit:
  hmac_key_file: /etc/tunnel/audit.key
  max_bytes: 1048576
  keep: 3
jwt:
  public_key_file: /etc/tunnel/jwt.pub
  algorithm: ES256
  audience: relay
  issuer: https://id.example.com
  leeway: 5s
limits:
  tenant_rps: 10
  tenant_burst: 20
  route_rps: 2.5
  route_burst: 5
  max_streams_per_tunnel: 8
  max_header_bytes: 8192
  max_body_bytes: 1048576
  header_read_timeout: 3s
  idle_timeout: 2m
breaker:
  failures: 3
  cooldown: 20s
liveness:
  ping_interval: 5s
  ping_timeout: 4s
shutdown:
  drain_timeout: 30s
)";

TEST(RelayConfig, ParsesEveryKey) {
    auto c = parse_relay_config(full, "relay.yaml");
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->listen.host, "0.0.0.0");
    EXPECT_EQ(c->listen.port, 8443);
    ASSERT_TRUE(c->tls);
    EXPECT_EQ(c->tls->cert_file, "/etc/tunnel/relay.crt");
    EXPECT_EQ(c->tls->key_file, "/etc/tunnel/relay.key");
    EXPECT_EQ(c->admin_listen.to_string(), "127.0.0.1:9091");
    EXPECT_EQ(c->domain, "relay.example.com");
    EXPECT_EQ(c->host_key_file, "/var/lib/tunnel/host_ed25519");
    EXPECT_EQ(c->audit_log, "/var/log/tunnel/audit.jsonl");
    EXPECT_EQ(c->admin.token_file, "/etc/tunnel/admin.token");
    EXPECT_EQ(c->admin.allowed_hosts,
              (std::vector<std::string>{"relay-admin.internal", "metrics.example.com"}));
    EXPECT_EQ(c->audit.hmac_key_file, "/etc/tunnel/audit.key");
    EXPECT_EQ(c->audit.max_bytes, 1048576u);
    EXPECT_EQ(c->audit.keep, 3u);
    EXPECT_EQ(c->jwt.public_key_file, "/etc/tunnel/jwt.pub");
    EXPECT_EQ(c->jwt.algorithm, jwt_algorithm::es256);
    EXPECT_EQ(c->jwt.audience, "relay");
    EXPECT_EQ(c->jwt.issuer, "https://id.example.com");
    EXPECT_EQ(c->jwt.leeway, 5s);
    EXPECT_EQ(c->limits.tenant_rps, 10);
    EXPECT_EQ(c->limits.tenant_burst, 20);
    EXPECT_EQ(c->limits.route_rps, 2.5);
    EXPECT_EQ(c->limits.route_burst, 5);
    EXPECT_EQ(c->limits.max_streams_per_tunnel, 8u);
    EXPECT_EQ(c->limits.max_header_bytes, 8192u);
    EXPECT_EQ(c->limits.max_body_bytes, 1048576u);
    EXPECT_EQ(c->limits.header_read_timeout, 3s);
    EXPECT_EQ(c->limits.idle_timeout, 2min);
    EXPECT_EQ(c->breaker.failures, 3u);
    EXPECT_EQ(c->breaker.cooldown, 20s);
    EXPECT_EQ(c->liveness.ping_interval, 5s);
    EXPECT_EQ(c->liveness.ping_timeout, 4s);
    EXPECT_EQ(c->shutdown.drain_timeout, 30s);

    auto v = verifier_options_for(*c);
    EXPECT_EQ(v.source, verifier_options::key_source::public_key_file);
    EXPECT_EQ(v.path, "/etc/tunnel/jwt.pub");
    EXPECT_EQ(v.rules.leeway, 5s);
    EXPECT_EQ(v.rules.default_max_streams, 8u);
    EXPECT_EQ(v.rules.default_rps, 10);
    EXPECT_EQ(v.rules.audience, "relay");
}

TEST(RelayConfig, MinimalUsesDefaults) {
    auto c = parse_relay_config("listen: 127.0.0.1:0\nhost_key_file: hk\njwt: {secret_file: s}\n",
                                "r.yaml");
    ASSERT_TRUE(c) << c.error().message;
    relay_config d;
    EXPECT_FALSE(c->tls);
    EXPECT_EQ(c->jwt.algorithm, jwt_algorithm::hs256);
    EXPECT_EQ(c->limits.tenant_rps, d.limits.tenant_rps);
    EXPECT_EQ(c->admin_listen.to_string(), "127.0.0.1:9090");
    EXPECT_EQ(c->jwt.leeway, 30s);
    EXPECT_TRUE(c->admin.token_file.empty());
    EXPECT_TRUE(c->admin.allowed_hosts.empty());
    EXPECT_EQ(c->audit.max_bytes, 0u);
    EXPECT_EQ(c->audit.keep, 10u);
}

// Finding 9: an admin listener off loopback without a token is a config error naming the key.
TEST(RelayConfig, AdminOffLoopbackNeedsAToken) {
    const std::string base = "listen: 127.0.0.1:1\nhost_key_file: hk\njwt: {secret_file: s}\n";
    for (const char* where : {"0.0.0.0:9090", "':9090'", "10.1.2.3:9090", "'[::]:9090'"}) {
        auto c = parse_relay_config(base + "admin_listen: " + where + "\n", "r.yaml");
        ASSERT_FALSE(c) << where;
        EXPECT_NE(c.error().message.find("r.yaml: admin.token_file: required because admin_listen"),
                  std::string::npos)
            << c.error().message;
    }
    auto with_token = parse_relay_config(
        base + "admin_listen: 0.0.0.0:9090\nadmin: {token_file: /etc/tunnel/admin.token}\n", "r");
    EXPECT_TRUE(with_token) << with_token.error().message;
    EXPECT_TRUE(parse_relay_config(base + "admin_listen: '[::1]:9090'\n", "r"));
    EXPECT_TRUE(parse_relay_config(base + "admin_listen: localhost:9090\n", "r"));

    auto bad_host =
        parse_relay_config(base + "admin: {allowed_hosts: ['evil example', ok.example]}\n", "r");
    ASSERT_FALSE(bad_host);
    EXPECT_NE(bad_host.error().message.find("admin.allowed_hosts: \"evil example\""),
              std::string::npos)
        << bad_host.error().message;
    auto unknown = parse_relay_config(base + "admin: {token: x}\n", "r");
    ASSERT_FALSE(unknown);
    EXPECT_NE(unknown.error().message.find("admin.token: unknown key"), std::string::npos);
}

TEST(RelayConfig, AuditSection) {
    const std::string base = "listen: 127.0.0.1:1\nhost_key_file: hk\njwt: {secret_file: s}\n";
    auto orphan = parse_relay_config(base + "audit: {max_bytes: 65536}\n", "r");
    ASSERT_FALSE(orphan);
    EXPECT_NE(orphan.error().message.find("audit: hmac_key_file and max_bytes need audit_log"),
              std::string::npos)
        << orphan.error().message;
    auto tiny =
        parse_relay_config(base + "audit_log: a.jsonl\naudit: {max_bytes: 100, keep: 0}\n", "r");
    ASSERT_FALSE(tiny);
    EXPECT_NE(tiny.error().message.find("audit.max_bytes:"), std::string::npos);
    EXPECT_NE(tiny.error().message.find("audit.keep:"), std::string::npos);
    auto ok = parse_relay_config(base + "audit_log: a.jsonl\naudit: {max_bytes: 4096}\n", "r");
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_EQ(ok->audit.max_bytes, 4096u);
    bool described = false;
    for (const auto& line : describe(*ok)) described |= line == "audit.max_bytes: 4096";
    EXPECT_TRUE(described);
}

TEST(RelayConfig, LimitsForHostileCallers) {
    auto c = parse_relay_config(R"(listen: 127.0.0.1:0
host_key_file: hk
jwt: {secret_file: s}
limits:
  write_timeout: 15s
  min_body_rate: 0
  min_body_rate_grace: 5s
  max_connections: 900
  max_connections_per_ip: 256
  max_unauthenticated: 300
  attach_refusals_per_ip: 5
  attach_refusal_window: 30s
  max_tunnels_per_tenant: 3
  max_names_per_tenant: 7
  max_channel_buffer_bytes: 8388608
  max_tunnel_buffer_bytes: 67108864
)",
                                "r.yaml");
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->limits.write_timeout, 15s);
    EXPECT_EQ(c->limits.min_body_rate, 0);
    EXPECT_EQ(c->limits.min_body_rate_grace, 5s);
    EXPECT_EQ(c->limits.max_connections, 900u);
    EXPECT_EQ(c->limits.max_connections_per_ip, 256u);
    EXPECT_EQ(c->limits.max_unauthenticated, 300u);
    EXPECT_EQ(c->limits.attach_refusals_per_ip, 5u);
    EXPECT_EQ(c->limits.attach_refusal_window, 30s);
    EXPECT_EQ(c->limits.max_tunnels_per_tenant, 3u);
    EXPECT_EQ(c->limits.max_names_per_tenant, 7u);
    EXPECT_EQ(c->limits.max_channel_buffer_bytes, 8388608u);
    EXPECT_EQ(c->limits.max_tunnel_buffer_bytes, 67108864u);
    EXPECT_EQ(verifier_options_for(*c).rules.max_tunnels, 3u);
    EXPECT_EQ(verifier_options_for(*c).rules.max_names, 7u);

    auto bad = parse_relay_config(R"(listen: 127.0.0.1:0
host_key_file: hk
jwt: {secret_file: s}
limits:
  min_body_rate: -1
  max_connections: 10
  max_unauthenticated: 20
  max_channel_buffer_bytes: 1048576
  write_timeout: 0s
)",
                                  "r.yaml");
    ASSERT_FALSE(bad);
    const auto& m = bad.error().message;
    EXPECT_NE(m.find("limits.min_body_rate"), std::string::npos) << m;
    EXPECT_NE(m.find("limits.max_channel_buffer_bytes"), std::string::npos) << m;
    EXPECT_NE(m.find("limits.write_timeout"), std::string::npos) << m;
    auto cross = parse_relay_config(R"(listen: 127.0.0.1:0
host_key_file: hk
jwt: {secret_file: s}
limits: {max_connections: 10, max_unauthenticated: 20}
)",
                                    "r.yaml");
    ASSERT_FALSE(cross);
    EXPECT_NE(cross.error().message.find("limits.max_unauthenticated"), std::string::npos);
}

TEST(RelayConfig, EveryProblemReportedWithItsPath) {
    auto c = parse_relay_config(R"(
listen: nowhere
host_key_file: hk
colour: blue
jwt: {secret_file: s, algorithm: HS999}
limits: {tenant_rps: 0, max_streams_per_tunnel: -1, idle_timeout: 5x, surprise: 1}
breaker: {cooldown: 0s}
allow_plaintext: maybe
)",
                                "relay.yaml");
    ASSERT_FALSE(c);
    const auto& m = c.error().message;
    for (auto want :
         {"relay.yaml: listen: address \"nowhere\": no port", "relay.yaml: colour: unknown key",
          "relay.yaml: jwt.algorithm: unsupported JWT algorithm \"HS999\"",
          "relay.yaml: limits.tenant_rps: must be a number > 0",
          "relay.yaml: limits.max_streams_per_tunnel: must be a whole number from 1",
          "relay.yaml: limits.idle_timeout: invalid duration \"5x\"",
          "relay.yaml: limits.surprise: unknown key", "relay.yaml: breaker.cooldown: must be > 0",
          "relay.yaml: allow_plaintext: must be true or false"})
        EXPECT_NE(m.find(want), std::string::npos) << "missing: " << want << "\nin:\n" << m;
}

TEST(RelayConfig, CrossFieldRules) {
    auto plain =
        parse_relay_config("listen: 0.0.0.0:80\nhost_key_file: hk\njwt: {secret_file: s}\n", "r");
    ASSERT_FALSE(plain);
    EXPECT_NE(plain.error().message.find("r: listen: plain HTTP on 0.0.0.0 is not loopback"),
              std::string::npos)
        << plain.error().message;
    EXPECT_TRUE(parse_relay_config(
        "listen: 0.0.0.0:80\nallow_plaintext: true\nhost_key_file: hk\njwt: {secret_file: s}\n",
        "r"));
    EXPECT_TRUE(
        parse_relay_config("listen: '[::1]:80'\nhost_key_file: hk\njwt: {secret_file: s}\n", "r"));

    auto two = parse_relay_config(
        "listen: 127.0.0.1:1\nhost_key_file: hk\njwt: {secret_file: s, jwks_file: j}\n", "r");
    ASSERT_FALSE(two);
    EXPECT_NE(two.error().message.find("jwt: set exactly one of"), std::string::npos)
        << two.error().message;
    auto none =
        parse_relay_config("listen: 127.0.0.1:1\nhost_key_file: hk\njwt: {audience: a}\n", "r");
    ASSERT_FALSE(none);
    EXPECT_NE(none.error().message.find("exactly one"), std::string::npos) << none.error().message;

    auto pub_hs = parse_relay_config(
        "listen: 127.0.0.1:1\nhost_key_file: hk\njwt: {public_key_file: p, algorithm: HS256}\n",
        "r");
    ASSERT_FALSE(pub_hs);
    EXPECT_NE(pub_hs.error().message.find("RS256 or ES256"), std::string::npos);
    auto pub_noalg =
        parse_relay_config("listen: 127.0.0.1:1\nhost_key_file: hk\njwt: {jwks_file: j}\n", "r");
    ASSERT_FALSE(pub_noalg);
    EXPECT_NE(pub_noalg.error().message.find("jwt.algorithm: is required"), std::string::npos);

    auto tls_half = parse_relay_config(
        "listen: 0.0.0.0:443\ntls: {cert_file: c}\nhost_key_file: hk\njwt: {secret_file: s}\n",
        "r");
    ASSERT_FALSE(tls_half);
    EXPECT_NE(tls_half.error().message.find("tls.key_file: is required"), std::string::npos)
        << tls_half.error().message;

    auto no_hk = parse_relay_config("listen: 127.0.0.1:1\njwt: {secret_file: s}\n", "r");
    ASSERT_FALSE(no_hk);
    EXPECT_NE(no_hk.error().message.find("host_key_file: is required"), std::string::npos);

    auto same_port = parse_relay_config(
        "listen: 127.0.0.1:9000\nadmin_listen: 127.0.0.1:9000\nhost_key_file: hk\njwt: "
        "{secret_file: s}\n",
        "r");
    ASSERT_FALSE(same_port);
    auto bad_domain = parse_relay_config(
        "listen: 127.0.0.1:1\ndomain: 'a..b'\nhost_key_file: hk\njwt: {secret_file: s}\n", "r");
    ASSERT_FALSE(bad_domain);
    EXPECT_NE(bad_domain.error().message.find("r: domain:"), std::string::npos)
        << bad_domain.error().message;
}

TEST(RelayConfig, EmptyAndBrokenDocuments) {
    EXPECT_FALSE(parse_relay_config("", "r"));
    auto broken = parse_relay_config("listen: [", "r");
    ASSERT_FALSE(broken);
    EXPECT_NE(broken.error().message.find("invalid YAML"), std::string::npos);
    EXPECT_FALSE(parse_relay_config("- a\n- b\n", "r"));
    EXPECT_EQ(load_relay_config("/nonexistent/relay.yaml").error().code, core::errc::not_found);
}

TEST(RelayConfig, ListenAddresses) {
    EXPECT_EQ(parse_listen_address("127.0.0.1:0")->port, 0);
    EXPECT_TRUE(parse_listen_address("127.0.0.1:0")->is_loopback());
    EXPECT_TRUE(parse_listen_address("localhost:80")->is_loopback());
    EXPECT_TRUE(parse_listen_address("[::1]:80")->is_loopback());
    EXPECT_EQ(parse_listen_address("[::1]:80")->to_string(), "[::1]:80");
    EXPECT_FALSE(parse_listen_address(":80")->is_loopback());
    EXPECT_FALSE(parse_listen_address("10.0.0.1:80")->is_loopback());
    EXPECT_FALSE(parse_listen_address("::1:80"));
    EXPECT_FALSE(parse_listen_address("host:70000"));
    EXPECT_FALSE(parse_listen_address("host:"));
    EXPECT_FALSE(parse_listen_address("host"));
}

TEST(RelayConfig, DevConfig) {
    auto c = dev_config("127.0.0.1:0", "127.0.0.1:0", "/tmp/secret");
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_FALSE(c->tls);
    EXPECT_EQ(c->jwt.secret_file, "/tmp/secret");
    EXPECT_TRUE(c->host_key_file.empty());
    EXPECT_FALSE(dev_config("0.0.0.0:8080", "127.0.0.1:0", "/tmp/s"));
    EXPECT_FALSE(dev_config("127.0.0.1:8080", "0.0.0.0:0", "/tmp/s"));
    EXPECT_FALSE(dev_config("127.0.0.1:8080", "127.0.0.1:0", ""));
    EXPECT_FALSE(dev_config("nonsense", "127.0.0.1:0", "/tmp/s"));

    auto lines = describe(*c);
    auto has = [&](std::string_view want) {
        for (const auto& l : lines)
            if (l == want) return true;
        return false;
    };
    EXPECT_TRUE(has("listen: 127.0.0.1:0 (plain HTTP)"));
    EXPECT_TRUE(has("jwt.secret_file: /tmp/secret"));
    EXPECT_TRUE(has("jwt.algorithm: HS256"));
    EXPECT_TRUE(has("host_key_file: (ephemeral key)"));
    EXPECT_TRUE(has("limits.header_read_timeout: 10s"));
    EXPECT_TRUE(has("shutdown.drain_timeout: 15s"));
}

TEST(RelayConfigWorkers, DefaultsToAutoWhichIsTheCoresAndTakesOneTo256) {
    const std::string base = "listen: 127.0.0.1:1\nhost_key_file: hk\njwt: {secret_file: s}\n";
    auto d = parse_relay_config(base, "r.yaml");
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_EQ(d->workers, 0u);
    EXPECT_GE(resolve_workers(*d), 1u);
    auto a = parse_relay_config(base + "workers: auto\n", "r.yaml");
    ASSERT_TRUE(a) << a.error().message;
    EXPECT_EQ(a->workers, 0u);
    EXPECT_GE(resolve_workers(*a), 1u);
    EXPECT_LE(resolve_workers(*a), max_workers);
    for (const char* n : {"1", "2", "256"}) {
        auto c = parse_relay_config(base + "workers: " + n + "\n", "r.yaml");
        ASSERT_TRUE(c) << n << ": " << c.error().message;
        EXPECT_EQ(c->workers, static_cast<unsigned>(std::stoi(n)));
        EXPECT_EQ(resolve_workers(*c), c->workers);
    }
}

TEST(RelayConfigWorkers, OutOfRangeOrNotANumberSaysWhatToDo) {
    const std::string base = "listen: 127.0.0.1:1\nhost_key_file: hk\njwt: {secret_file: s}\n";
    for (const char* bad : {"0", "257", "-1", "two", "1.5", "[2]", "99999"}) {
        auto c = parse_relay_config(base + "workers: " + bad + "\n", "r.yaml");
        ASSERT_FALSE(c) << bad;
        const auto& m = c.error().message;
        EXPECT_NE(m.find("workers: must be a whole number from 1 to 256 or auto"),
                  std::string::npos)
            << m;
        EXPECT_NE(m.find("auto uses one per core"), std::string::npos) << m;
    }
}

}  // namespace
}  // namespace tunnel::relay
