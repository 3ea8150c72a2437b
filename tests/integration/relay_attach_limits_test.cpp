// Attach-side limits (issue 10, findings 7 and 11) against a real `tunnel
// relay` and real `tunnel connect` clients: refused attaches from one address
// are throttled (429 without a record each, one summary per window), tunnels
// and names per tenant are capped (narrowed by the token's claims) with clear
// refusals that are audited, a 401 does not tell the caller the relay's
// audience or issuer, and callers naming made-up routes create no metric
// series.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ctime>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/relay_fixture.hpp"
#include "support/streaming_origin.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;

std::string attach_request(const std::string& token) {
    std::string auth = token.empty() ? "" : fmt::format("Authorization: Bearer {}\r\n", token);
    return fmt::format(
        "GET /v1/tunnel HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: "
        "Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        "{}\r\n",
        auth);
}

// Sends `request` from `source` (127.0.0.0/8) and returns what came back
// until the relay closed (or 3 s).
std::string exchange_from(const std::string& source, std::uint16_t port,
                          const std::string& request) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in local{};
    local.sin_family = AF_INET;
    ::inet_pton(AF_INET, source.c_str(), &local.sin_addr);
    sockaddr_in remote{};
    remote.sin_family = AF_INET;
    remote.sin_port = htons(port);
    ::inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr);
    std::string got;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) == 0 &&
        ::connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof remote) == 0) {
        (void)::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
        char buf[4096];
        for (;;) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 3000) <= 0) break;
            ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) break;
            got.append(buf, static_cast<std::size_t>(n));
        }
    }
    ::close(fd);
    return got;
}

int status_of(const std::string& raw) {
    return raw.rfind("HTTP/1.1 ", 0) == 0 ? std::stoi(raw.substr(9, 3)) : 0;
}

std::string error_of(const std::string& raw) {
    auto body = raw.find("\r\n\r\n");
    if (body == std::string::npos) return "";
    auto j = nlohmann::json::parse(raw.substr(body + 4), nullptr, false);
    return j.is_object() ? j.value("error", "") : "";
}

std::vector<nlohmann::json> audit_records(const relay_fixture& relay, const std::string& event) {
    std::vector<nlohmann::json> out;
    std::istringstream in(read_text_file(relay.audit_path()).value_or(""));
    for (std::string line; std::getline(in, line);) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_object() && j.value("event", "") == event) out.push_back(j);
    }
    return out;
}

std::string field(const nlohmann::json& record, const std::string& name) {
    // The audit log keeps an event's fields under "data" (observe/audit_log).
    const auto& data = record.contains("data") ? record["data"] : record;
    return data.contains(name) && data[name].is_string() ? data[name].get<std::string>() : "";
}

std::string metrics_line(const relay_fixture& relay, const std::string& series) {
    std::istringstream in(relay.admin_get("/metrics"));
    for (std::string line; std::getline(in, line);)
        if (line.rfind(series + " ", 0) == 0) return line.substr(series.size() + 1);
    return "";
}

long long now_s() {
    return static_cast<long long>(std::time(nullptr));
}

relay_fixture start(const std::string& limits, const std::string& jwt_yaml = "") {
    relay_options o;
    o.audit_log = true;
    o.extra_yaml = limits.empty() ? "" : "limits:\n" + limits;
    o.jwt_yaml = jwt_yaml;
    auto r = relay_fixture::start(o);
    if (!r) throw std::runtime_error(r.error().message);  // fails the test
    return std::move(*r);
}

TEST(RelayAttachLimits, RefusedAttachesFromOneAddressAreThrottledAndSummarised) {
    auto relay = start("  attach_refusals_per_ip: 5\n  attach_refusal_window: 2s\n");
    std::map<int, int> answers;
    for (int i = 0; i < 40; ++i) {
        auto raw = exchange_from("127.0.0.9", relay.public_port(), attach_request("not-a-jwt"));
        ++answers[status_of(raw)];
        if (status_of(raw) == 429) {
            EXPECT_EQ(error_of(raw), "too_many_refusals") << raw;
            EXPECT_NE(raw.find("Retry-After: "), std::string::npos) << raw;
        }
    }
    EXPECT_EQ(answers[401], 5);
    EXPECT_EQ(answers[429], 35);
    // Another address is not throttled, and a good client still attaches.
    EXPECT_EQ(status_of(exchange_from("127.0.0.10", relay.public_port(), attach_request("x.y.z"))),
              401);
    auto origin = streaming_origin::start();
    ASSERT_TRUE(origin);
    auto tok = relay.mint("acme", "web");
    ASSERT_TRUE(tok);
    auto c = relay.connect(*tok, {{"web", (*origin)->port()}});
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_TRUE(relay.wait_published("acme", "web", 10s));

    // Six refusals were recorded one by one; the 35 throttled ones only in
    // one summary once the window ended.
    EXPECT_EQ(audit_records(relay, "attach_refused").size(), 6u);
    ASSERT_TRUE(streaming_origin::wait_until(
        [&] { return !audit_records(relay, "attach_refusals_throttled").empty(); }, 5s))
        << read_text_file(relay.audit_path()).value_or("");
    const auto summaries = audit_records(relay, "attach_refusals_throttled");
    ASSERT_EQ(summaries.size(), 1u);
    EXPECT_EQ(field(summaries[0], "source"), "127.0.0.9");
    EXPECT_EQ(field(summaries[0], "refused"), "5");
    EXPECT_EQ(field(summaries[0], "throttled"), "35");
    EXPECT_EQ(metrics_line(relay, "relay_attach_throttled_total"), "35");
}

TEST(RelayAttachLimits, TunnelsPerTenantAreCappedAndTheTokenNarrowsTheCap) {
    auto relay = start("  max_tunnels_per_tenant: 2\n");
    auto origin = streaming_origin::start();
    ASSERT_TRUE(origin);
    const auto port = (*origin)->port();
    auto tok = relay.mint("acme", "a,b,c");
    ASSERT_TRUE(tok);
    auto a = relay.connect(*tok, {{"a", port}});
    ASSERT_TRUE(a) << a.error().message;
    auto b = relay.connect(*tok, {{"b", port}});
    ASSERT_TRUE(b) << b.error().message;
    ASSERT_TRUE(relay.wait_published("acme", "a", 10s));
    ASSERT_TRUE(relay.wait_published("acme", "b", 10s));

    // A third attach of the tenant: 429 tunnel_limit, audited.
    auto raw = exchange_from("127.0.0.1", relay.public_port(), attach_request(*tok));
    EXPECT_EQ(status_of(raw), 429) << raw;
    EXPECT_EQ(error_of(raw), "tunnel_limit") << raw;
    auto c = relay.connect(*tok, {{"c", port}}, false);
    ASSERT_TRUE(c);
    EXPECT_FALSE(relay.wait_published("acme", "c", 3s));
    bool audited = false;
    for (const auto& r : audit_records(relay, "attach_refused"))
        audited |= field(r, "error") == "tunnel_limit";
    EXPECT_TRUE(audited) << read_text_file(relay.audit_path()).value_or("");
    // Another tenant is not affected.
    auto other = relay.mint("beta", "web");
    ASSERT_TRUE(other);
    auto d = relay.connect(*other, {{"web", port}});
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_TRUE(relay.wait_published("beta", "web", 10s));

    // A token whose max_tunnels claim is 1 narrows the relay's 2.
    const std::string narrow = relay.craft(fmt::format(
        R"({{"sub":"gamma","exp":{},"allow":["x","y"],"max_tunnels":1}})", now_s() + 3600));
    auto x = relay.connect(narrow, {{"x", port}});
    ASSERT_TRUE(x) << x.error().message;
    ASSERT_TRUE(relay.wait_published("gamma", "x", 10s));
    raw = exchange_from("127.0.0.1", relay.public_port(), attach_request(narrow));
    EXPECT_EQ(error_of(raw), "tunnel_limit") << raw;
    EXPECT_NE(metrics_line(relay, "relay_tenant_limits_total{limit=\"tunnels\"}"), "");
}

TEST(RelayAttachLimits, NamesPerTenantAreCappedAcrossItsTunnels) {
    auto relay = start("  max_names_per_tenant: 2\n");
    auto origin = streaming_origin::start();
    ASSERT_TRUE(origin);
    const auto port = (*origin)->port();
    auto tok = relay.mint("acme", "*");
    ASSERT_TRUE(tok);
    auto first = relay.connect(*tok, {{"a", port}, {"b", port}, {"c", port}});
    ASSERT_TRUE(first) << first.error().message;
    EXPECT_TRUE(relay.wait_published("acme", "a", 5s));
    EXPECT_TRUE(relay.wait_published("acme", "b", 5s));
    EXPECT_TRUE(relay.wait_published("acme", "c", 1s, false));
    EXPECT_NE(first->log().find(R"("event":"refused")"), std::string::npos) << first->log();
    // The cap counts every tunnel of the tenant.
    auto second = relay.connect(*tok, {{"d", port}});
    ASSERT_TRUE(second) << second.error().message;
    EXPECT_TRUE(relay.wait_published("acme", "d", 1s, false));
    std::size_t refused = 0;
    for (const auto& r : audit_records(relay, "publish_refused"))
        if (field(r, "error") == "name_limit") ++refused;
    EXPECT_GE(refused, 2u) << read_text_file(relay.audit_path()).value_or("");
    // Published names still serve.
    auto r = http_request(relay.public_port(),
                          "GET /t/acme/a/hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
}

TEST(RelayAttachLimits, A401DoesNotRevealTheConfiguredAudienceOrIssuer) {
    auto relay =
        start("", "  audience: aud-only-the-relay-knows\n  issuer: iss-only-the-relay-knows\n");
    const auto exp = now_s() + 3600;
    const std::vector<std::string> tokens{
        relay.craft(fmt::format(R"({{"sub":"acme","exp":{},"allow":["web"]}})", exp)),
        relay.craft(fmt::format(
            R"({{"sub":"acme","exp":{},"allow":["web"],"aud":"guess","iss":"iss-only-the-relay-knows"}})",
            exp)),
        relay.craft(fmt::format(
            R"({{"sub":"acme","exp":{},"allow":["web"],"aud":"aud-only-the-relay-knows","iss":"x"}})",
            exp)),
        relay.craft(fmt::format(
            R"({{"sub":"acme","exp":{},"allow":["web"],"aud":"aud-only-the-relay-knows"}})", exp)),
    };
    for (const auto& t : tokens) {
        auto raw = exchange_from("127.0.0.1", relay.public_port(), attach_request(t));
        EXPECT_EQ(status_of(raw), 401) << raw;
        EXPECT_EQ(raw.find("only-the-relay-knows"), std::string::npos) << raw;
    }
    // The relay's own log keeps the detail for its operator.
    EXPECT_NE(relay.log().find("aud-only-the-relay-knows"), std::string::npos);
    EXPECT_NE(relay.log().find("iss-only-the-relay-knows"), std::string::npos);
}

TEST(RelayAttachLimits, MadeUpRoutesCreateNoMetricSeries) {
    auto relay = start("");
    auto origin = streaming_origin::start();
    ASSERT_TRUE(origin);
    auto tok = relay.mint("acme", "web");
    ASSERT_TRUE(tok);
    auto c = relay.connect(*tok, {{"web", (*origin)->port()}});
    ASSERT_TRUE(c) << c.error().message;
    for (int i = 0; i < 30; ++i) {
        auto r = http_request(relay.public_port(),
                              fmt::format("GET /t/noise{}/n{}/ HTTP/1.1\r\nHost: x\r\nConnection: "
                                          "close\r\n\r\n",
                                          i, i));
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 503);
    }
    // A tenant that exists, but a name it does not publish: no series either.
    auto r = http_request(relay.public_port(),
                          "GET /t/acme/nope/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    ASSERT_TRUE(r);
    r = http_request(relay.public_port(),
                     "GET /t/acme/web/hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    const auto metrics = relay.admin_get("/metrics");
    EXPECT_EQ(metrics.find("noise"), std::string::npos) << metrics;
    EXPECT_EQ(metrics.find("route=\"nope\""), std::string::npos) << metrics;
    EXPECT_NE(metrics.find(R"(relay_requests_total{tenant="acme",route="web",status="2xx"} 1)"),
              std::string::npos)
        << metrics;
    EXPECT_NE(metrics.find(R"(relay_requests_total{tenant="none",route="none",status="5xx"} 31)"),
              std::string::npos)
        << metrics;
}

}  // namespace
}  // namespace tunnel::test
