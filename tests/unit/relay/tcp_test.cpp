// Raw TCP publishing's pure parts: the ClientHello/SNI parser
// (relay/client_hello.hpp), the tcp: config section (relay/tcp_config.hpp)
// and the port table (relay/tcp_routes.hpp). The relay end to end is in
// tests/integration/relay_tcp_test.cpp.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "../../support/client_hello_builder.hpp"
#include "relay/client_hello.hpp"
#include "relay/relay_client.hpp"
#include "relay/relay_config.hpp"
#include "relay/tcp_routes.hpp"
#include "relay/tcp_service.hpp"

namespace tunnel::relay {
namespace {

using namespace tunnel::testing;
using status = client_hello::status;

TEST(ClientHello, ReadsTheServerNameOfAWholeRecord) {
    const auto rec = client_hello_record("SSH--Acme.tcp.example.com");
    auto h = parse_client_hello(rec);
    ASSERT_EQ(h.result, status::ok) << h.problem;
    EXPECT_EQ(h.server_name, "ssh--acme.tcp.example.com");
    // Trailing bytes (the next record) are not looked at.
    EXPECT_EQ(parse_client_hello(rec + "\x17garbage").result, status::ok);
    // Without SNI: ok, no name.
    auto none = parse_client_hello(client_hello_record(""));
    ASSERT_EQ(none.result, status::ok);
    EXPECT_TRUE(none.server_name.empty());
}

TEST(ClientHello, EveryPrefixNeedsMoreAndSaysHowMuch) {
    const auto rec = client_hello_record("db--acme.tcp.example.com");
    for (std::size_t n = 1; n < rec.size(); ++n) {
        auto h = parse_client_hello(std::string_view(rec).substr(0, n));
        ASSERT_EQ(h.result, status::need_more) << n;
        EXPECT_EQ(h.needed, n < tls_record_header ? tls_record_header : rec.size()) << n;
    }
}

TEST(ClientHello, RefusesWhatIsNotAWellFormedClientHello) {
    EXPECT_EQ(parse_client_hello("GET / HTTP/1.1\r\n").result, status::not_tls);
    EXPECT_EQ(parse_client_hello(std::string("\x00\x01", 2)).result, status::not_tls);
    auto bad = [](const std::string& bytes) {
        auto h = parse_client_hello(bytes);
        EXPECT_EQ(h.result, status::malformed) << h.problem;
        EXPECT_FALSE(h.problem.empty());
        return h.problem;
    };
    // Record length over 16384, and 0.
    bad(std::string("\x16\x03\x01\x40\x01", 5) + std::string(16385, 'x'));
    bad(std::string("\x16\x03\x01\x00\x00", 5));
    // Not TLS 3.x.
    bad(std::string("\x16\x07\x01\x00\x01\x01", 6));
    // A handshake that is not a ClientHello (ServerHello = 2).
    auto msg = client_hello_message(sni_extension("a--b.c.d"));
    msg[0] = 2;
    bad(tls_record(msg));
    // The message claims more than the record holds (split over records).
    msg = client_hello_message(sni_extension("a--b.c.d"));
    msg[3] = static_cast<char>(msg[3] + 1);
    EXPECT_NE(bad(tls_record(msg)).find("first record"), std::string::npos);
    // An SNI list length that does not match, a name with a bad character,
    // two server_name extensions, an extensions length past the end.
    auto ext = sni_extension("ssh--acme.tcp.example.com");
    ext[5] = static_cast<char>(ext[5] + 1);
    bad(tls_record(client_hello_message(ext)));
    bad(client_hello_record("ssh--acme.tcp.example.com\x01"));
    bad(tls_record(client_hello_message(sni_extension("a--b.c.d") + sni_extension("e--f.g.h"))));
    auto whole = client_hello_message(sni_extension("a--b.c.d"));
    auto cut = whole.substr(0, whole.size() - 3);  // the extensions run past the message
    cut[3] = static_cast<char>(cut[3] - 3);
    bad(tls_record(cut));
    // Garbage of every first byte but 0x16 is not TLS; with 0x16 it is refused.
    for (int b = 0; b < 256; ++b) {
        std::string g(64, static_cast<char>(b));
        auto h = parse_client_hello(g);
        EXPECT_EQ(h.result, b == 0x16 ? status::malformed : status::not_tls) << b;
    }
}

TEST(ClientHello, AlertIsAFatalAlertRecord) {
    auto a = tls_alert(alert_unrecognized_name);
    ASSERT_EQ(a.size(), 7u);
    EXPECT_EQ(a[0], '\x15');
    EXPECT_EQ(a[5], '\x02');
    EXPECT_EQ(static_cast<unsigned char>(a[6]), 112);
}

const std::string base = "listen: 127.0.0.1:0\nhost_key_file: hk\njwt: {secret_file: s}\n";

TEST(TcpConfig, ParsesAndValidatesEveryKey) {
    auto off = parse_relay_config(base, "r.yaml");
    ASSERT_TRUE(off) << off.error().message;
    EXPECT_FALSE(off->tcp.enabled);
    auto c = parse_relay_config(base + R"(tcp:
  ports: 20000-20099
  bind: 127.0.0.1
  sni_domain: tcp.example.com
  client_hello_timeout: 2s
  max_connections_per_tenant: 10
)",
                                "r.yaml");
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_TRUE(c->tcp.enabled);
    EXPECT_EQ(c->tcp.first_port, 20000);
    EXPECT_EQ(c->tcp.last_port, 20099);
    EXPECT_EQ(c->tcp.bind, "127.0.0.1");
    EXPECT_EQ(c->tcp.sni_domain, "tcp.example.com");
    EXPECT_EQ(c->tcp.client_hello_timeout, std::chrono::seconds(2));
    EXPECT_EQ(c->tcp.max_connections_per_tenant, 10u);
    auto one = parse_relay_config(base + "tcp: {ports: 2222}\n", "r");
    ASSERT_TRUE(one) << one.error().message;
    EXPECT_EQ(one->tcp.first_port, 2222);
    EXPECT_EQ(one->tcp.last_port, 2222);
    bool described = false;
    for (const auto& l : describe(*c)) described = described || l == "tcp.ports: 20000-20099";
    EXPECT_TRUE(described);

    for (const auto& [yaml, expected] : std::vector<std::pair<std::string, std::string>>{
             {"tcp: {ports: 80-90}\n", "tcp.ports: \"80-90\": the range must lie within"},
             {"tcp: {ports: 30000-20000}\n", "tcp.ports: \"30000-20000\""},
             {"tcp: {ports: 20000-70000}\n", "tcp.ports"},
             {"tcp: {ports: 10000-20000}\n", "at most 4096"},
             {"tcp: {ports: lots}\n", "is not a port range"},
             {"tcp: {ports: 20000-}\n", "is not a port range"},
             {"tcp: {sni_domain: tcp.example.com}\n", "tcp.ports: is required"},
             {"tcp: {ports: 20000, bind: somewhere}\n", "tcp.bind: \"somewhere\" is not an IP"},
             {"tcp: {ports: 20000, sni_domain: Tcp.Example}\n", "tcp.sni_domain"},
             {"tcp: {ports: 20000, sni_domain: localhost}\n", "tcp.sni_domain"},
             {"tcp: {ports: 20000, client_hello_timeout: 5m}\n", "at most 1m"},
             {"tcp: {ports: 20000, max_connections_per_tenant: 0}\n", "max_connections"},
             {"tcp: {ports: 20000, port: 1}\n", "tcp.port: unknown key"},
         }) {
        auto r = parse_relay_config(base + yaml, "r.yaml");
        ASSERT_FALSE(r) << yaml;
        EXPECT_NE(r.error().message.find(expected), std::string::npos)
            << yaml << " -> " << r.error().message;
    }
}

TEST(TcpRoutes, AssignsPortsKeepsThemWhileHeldAndSaysWhenTheRangeIsExhausted) {
    tcp_routes routes(20000, 20002);
    std::set<std::string> held;  // names a lease holds
    auto is_held = [&](const std::string& tenant, const std::string& name) {
        return held.count(tenant + "/" + name) > 0;
    };
    std::set<std::uint16_t> busy{20001};  // another program listens there
    auto usable = [&](std::uint16_t p) { return busy.count(p) == 0; };
    auto a = routes.assign("acme", "ssh", 0, is_held, usable);
    ASSERT_TRUE(a);
    EXPECT_EQ(*a, 20000);
    EXPECT_EQ(*routes.assign("acme", "ssh", 0, is_held, usable), 20000);  // the same again
    EXPECT_EQ(*routes.assign("acme", "ssh", 20000, is_held, usable), 20000);
    EXPECT_FALSE(routes.assign("acme", "ssh", 20002, is_held, usable));  // it has another
    auto b = routes.assign("acme", "db", 0, is_held, usable);
    ASSERT_TRUE(b);
    EXPECT_EQ(*b, 20002);  // 20001 is busy
    auto c = routes.assign("beta", "ssh", 0, is_held, usable);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().code, core::errc::resource_exhausted);
    EXPECT_NE(c.error().message.find("no free port in tcp.ports 20000-20002"), std::string::npos)
        << c.error().message;
    // Assigned and not yet published (pending), published, or unpublished
    // but held by a lease: kept. Neither: free again.
    tcp_route r;
    r.tenant = "acme";
    r.name = "ssh";
    r.tunnel_id = 7;
    r.port = 20000;
    ASSERT_TRUE(routes.publish(r));
    r.name = "db";
    r.port = 20002;
    ASSERT_TRUE(routes.publish(r));
    r.tunnel_id = 8;
    EXPECT_FALSE(routes.publish(r));  // another tunnel
    EXPECT_EQ(routes.remove_tunnel(7).size(), 2u);
    held = {"acme/ssh", "acme/db"};
    EXPECT_FALSE(routes.assign("beta", "ssh", 0, is_held, usable));
    held.erase("acme/db");
    auto d = routes.assign("beta", "ssh", 0, is_held, usable);
    ASSERT_TRUE(d);
    EXPECT_EQ(*d, 20002);  // acme/db's, no longer held
    EXPECT_EQ(routes.port_of("acme", "ssh"), std::optional<std::uint16_t>(20000));
    routes.release_port("acme", "ssh");
    EXPECT_FALSE(routes.port_of("acme", "ssh"));
    // A publish that fails after assign() gives a new port back at once.
    held.clear();
    auto e = routes.assign("gamma", "z", 0, is_held, usable);
    ASSERT_TRUE(e);
    EXPECT_EQ(*e, 20000);
    routes.abandon("gamma", "z");
    EXPECT_FALSE(routes.port_of("gamma", "z"));
    // A wanted port in the range that is free is given (a client that had
    // it); one that is not is refused, never swapped for another silently.
    EXPECT_EQ(*routes.assign("gamma", "x", 20000, is_held, usable), 20000);
    auto taken = routes.assign("gamma", "y", 20002, is_held, usable);
    ASSERT_FALSE(taken);
    EXPECT_EQ(taken.error().code, core::errc::denied);
    EXPECT_FALSE(routes.assign("gamma", "y", 30000, is_held, usable));  // outside the range
}

TEST(TcpRoutes, CountsConnectionsPerTenantUpToTheCap) {
    tcp_routes routes(20000, 20000);
    EXPECT_TRUE(routes.open_connection("acme", 2));
    EXPECT_TRUE(routes.open_connection("acme", 2));
    EXPECT_FALSE(routes.open_connection("acme", 2));
    EXPECT_TRUE(routes.open_connection("beta", 2));
    routes.close_connection("acme");
    EXPECT_TRUE(routes.open_connection("acme", 2));
}

TEST(ExposeTcp, PublishesNameWithProtoTcpOnPortZeroAndTakesNoAccess) {
    auto e = parse_expose_tcp("SSH=22");
    ASSERT_TRUE(e) << e.error().message;
    EXPECT_TRUE(e->tcp);
    EXPECT_EQ(e->name, "ssh");
    EXPECT_EQ(e->target.to_string(), "127.0.0.1:22");
    auto bad = parse_expose_tcp("ssh");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("--expose-tcp 'ssh': write NAME=HOST:PORT"),
              std::string::npos)
        << bad.error().message;
    auto web = parse_expose("web=8080");
    ASSERT_TRUE(web);
    std::vector<expose_spec> exposes{*web, *e};
    ASSERT_TRUE(apply_access(exposes, {{"token"}, {}, {}}));
    EXPECT_TRUE(exposes[0].access.has_value());
    EXPECT_FALSE(exposes[1].access.has_value());  // raw TCP: no visitor access
    auto forwards = publish_forwards(exposes);
    ASSERT_EQ(forwards.size(), 2u);
    EXPECT_EQ(forwards[0].listen.port, 80);
    EXPECT_EQ(forwards[1].listen.host, "ssh;proto=tcp");
    EXPECT_EQ(forwards[1].listen.port, 0);  // the relay answers with its port
    EXPECT_TRUE(is_tcp_publish(forwards[1].listen.host));
    EXPECT_FALSE(is_tcp_publish(forwards[0].listen.host));
    EXPECT_FALSE(is_tcp_publish(";proto=tcp"));
    auto named = apply_access(exposes, {{"ssh=token"}, {}, {}});
    ASSERT_FALSE(named);
    EXPECT_NE(named.error().message.find("raw TCP name"), std::string::npos);
}

}  // namespace
}  // namespace tunnel::relay
