// The relay server end to end: a `tunnel relay` child, OpenSSH `ssh -R`
// clients attached through `tunnel ws-connect`, a streaming HTTP origin, and
// public requests over real sockets.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <ctime>
#include <thread>

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/relay_fixture.hpp"
#include "support/streaming_origin.hpp"
#include "support/tcp_servers.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

std::string get(const std::string& path, const std::string& extra = "") {
    return fmt::format("GET {} HTTP/1.1\r\nHost: relay.test\r\n{}Connection: close\r\n\r\n", path,
                       extra);
}

std::string attach_request(const std::string& token) {
    std::string auth = token.empty() ? "" : fmt::format("Authorization: Bearer {}\r\n", token);
    return fmt::format(
        "GET /v1/tunnel HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: "
        "Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{}\r\n",
        auth);
}

std::string error_code_of(const http_reply& r) {
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    return j.is_object() ? j.value("error", "") : "";
}

long long now_s() {
    return static_cast<long long>(std::time(nullptr));
}

class RelayServer : public ::testing::Test {
  protected:
    void start_relay(relay_options o = {}) {
        auto r = relay_fixture::start(std::move(o));
        ASSERT_TRUE(r) << r.error().message;
        relay.emplace(std::move(*r));
        auto org = streaming_origin::start();
        ASSERT_TRUE(org) << org.error().message;
        origin = std::move(*org);
    }

    relay_client publish(const std::string& tenant, const std::string& name, std::uint16_t port,
                         const std::string& extra_allow = "",
                         std::vector<std::string> token_extra = {}) {
        auto tok = relay->mint(tenant, extra_allow.empty() ? name : extra_allow, "1h",
                               std::move(token_extra));
        EXPECT_TRUE(tok) << tok.error().message;
        auto c = relay->publish(tenant, *tok, name, port);
        EXPECT_TRUE(c) << c.error().message;
        return std::move(*c);
    }

    http_reply request(const std::string& text, std::chrono::milliseconds timeout = 10s) {
        auto r = http_request(relay->public_port(), text, timeout);
        EXPECT_TRUE(r) << r.error().message;
        return r ? *r : http_reply{};
    }

    std::optional<relay_fixture> relay;
    std::unique_ptr<streaming_origin> origin;
};

TEST_F(RelayServer, AttachPublishAndRoundTrip) {
    start_relay();
    auto client = publish("alice", "llm", origin->port());

    auto r = request(get("/t/alice/llm/hello"));
    EXPECT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.body, "hello\n");

    // The origin sees the target without the routing prefix and our X-Forwarded-* headers.
    r = request(get("/t/alice/llm/headers?x=1", "X-Forwarded-For: 6.6.6.6\r\n"));
    EXPECT_EQ(r.status, 200);
    EXPECT_NE(r.body.find("GET /headers?x=1 HTTP/1.1"), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("X-Forwarded-For: 127.0.0.1"), std::string::npos) << r.body;
    EXPECT_EQ(r.body.find("6.6.6.6"), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("X-Forwarded-Proto: http"), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("X-Forwarded-Host: relay.test"), std::string::npos) << r.body;

    // Chunked request body, streamed to the origin and echoed back.
    r = request(
        "POST /t/alice/llm/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: "
        "close\r\n\r\n"
        "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "hello world");

    // Two requests on one keep-alive connection reuse the channel the
    // requests above left in the tunnel's keep-alive pool: no new origin
    // connection at all.
    const int before = origin->connections();
    r = request(
        "GET /t/alice/llm/hello HTTP/1.1\r\nHost: x\r\n\r\nGET /t/alice/llm/hello "
        "HTTP/1.1\r\nHost: x\r\n"
        "Connection: close\r\n\r\n");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(origin->connections() - before, 0);

    // Unknown names and routes.
    EXPECT_EQ(request(get("/t/alice/nope/")).status, 503);
    EXPECT_EQ(request(get("/elsewhere")).status, 404);

    auto tunnels = nlohmann::json::parse(relay->admin_get("/api/v1/tunnels"));
    ASSERT_EQ(tunnels["tunnels"].size(), 1u);
    EXPECT_EQ(tunnels["tunnels"][0]["tenant"], "alice");
    EXPECT_NE(relay->admin_get("/metrics").find("relay_requests_total"), std::string::npos);
}

TEST_F(RelayServer, StreamingResponseArrivesIncrementally) {
    start_relay();
    auto client = publish("alice", "llm", origin->port());
    int fd = connect_tcp("127.0.0.1", relay->public_port());
    ASSERT_GE(fd, 0);
    std::string req = get("/t/alice/llm/stream?n=5&ms=250");
    ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
    std::vector<std::pair<steady::time_point, int>> lines;  // arrival of each NDJSON line
    std::string raw;
    const auto deadline = steady::now() + 10s;
    int seen = 0;
    char buf[4096];
    while (steady::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 200) <= 0) continue;
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        raw.append(buf, static_cast<std::size_t>(n));
        for (int i = seen; i < 5; ++i)
            if (raw.find(fmt::format("{{\"i\":{}}}", i)) != std::string::npos) {
                lines.emplace_back(steady::now(), i);
                seen = i + 1;
            }
    }
    ::close(fd);
    ASSERT_EQ(lines.size(), 5u) << raw;
    EXPECT_NE(raw.find("application/x-ndjson"), std::string::npos);
    // Lines were produced 250 ms apart: they must not arrive bunched.
    auto spread = std::chrono::duration_cast<std::chrono::milliseconds>(lines.back().first -
                                                                        lines.front().first);
    EXPECT_GE(spread.count(), 700) << "NDJSON lines arrived bunched";
    for (std::size_t i = 1; i < lines.size(); ++i)
        EXPECT_GE(std::chrono::duration_cast<std::chrono::milliseconds>(lines[i].first -
                                                                        lines[i - 1].first)
                      .count(),
                  100);
}

TEST_F(RelayServer, CallerHangUpClosesTheOriginConnection) {
    start_relay();
    auto client = publish("alice", "llm", origin->port());
    int fd = connect_tcp("127.0.0.1", relay->public_port());
    ASSERT_GE(fd, 0);
    std::string req = get("/t/alice/llm/stream?n=200&ms=50");
    ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
    std::string raw;
    char buf[4096];
    while (raw.find("{\"i\":1}") == std::string::npos) {
        pollfd p{fd, POLLIN, 0};
        ASSERT_GT(::poll(&p, 1, 5000), 0) << raw;
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        ASSERT_GT(n, 0);
        raw.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    // The origin's stream must stop long before its 10 s of lines.
    EXPECT_TRUE(streaming_origin::wait_until([&] { return origin->streams_aborted() == 1; }, 5s))
        << "aborted " << origin->streams_aborted() << " completed " << origin->streams_completed();
    EXPECT_EQ(origin->streams_completed(), 0);
}

TEST_F(RelayServer, AttachRefusesBadTokens) {
    start_relay();
    auto missing = request(attach_request(""));
    EXPECT_EQ(missing.status, 401);
    EXPECT_EQ(error_code_of(missing), "missing_token");

    auto expired = request(attach_request(relay->craft(
        fmt::format(R"({{"sub":"alice","exp":{},"allow":["llm"]}})", now_s() - 3600))));
    EXPECT_EQ(expired.status, 401);
    EXPECT_EQ(error_code_of(expired), "token_expired") << expired.body;

    auto forged = request(attach_request(
        relay->craft(fmt::format(R"({{"sub":"alice","exp":{},"allow":["llm"]}})", now_s() + 3600),
                     false, "another-secret-of-enough-length")));
    EXPECT_EQ(forged.status, 401);
    EXPECT_EQ(error_code_of(forged), "bad_signature") << forged.body;

    auto none = request(attach_request(relay->craft(
        fmt::format(R"({{"sub":"alice","exp":{},"allow":["llm"]}})", now_s() + 3600), true)));
    EXPECT_EQ(none.status, 401);
    EXPECT_EQ(error_code_of(none), "unsupported_algorithm") << none.body;

    // No token in any log line.
    auto good = relay->mint("alice", "llm");
    ASSERT_TRUE(good);
    (void)request(attach_request(*good + "x"));
    EXPECT_EQ(relay->log().find(*good), std::string::npos);
    auto diag = nlohmann::json::parse(relay->admin_get("/api/v1/diagnostics"));
    EXPECT_GE(diag["counters"]["attach_refused"].get<int>(), 4);
}

TEST_F(RelayServer, NameNotAllowedIsRefusedAndWrongUserCannotAuthenticate) {
    start_relay();
    auto tok = relay->mint("alice", "llm");
    ASSERT_TRUE(tok);
    auto c = relay->publish("alice", *tok, "other", origin->port(), false);
    ASSERT_TRUE(c);
    // ExitOnForwardFailure: ssh gives up when the relay refuses the forward.
    auto code = c->process().wait(15s);
    ASSERT_TRUE(code.has_value()) << c->log();
    EXPECT_NE(*code, 0);
    EXPECT_NE(relay->log().find("publish refused"), std::string::npos) << relay->log();
    EXPECT_EQ(request(get("/t/alice/other/hello")).status, 503);

    // The SSH user must be the token's tenant.
    auto wrong = relay->publish("bob", *tok, "llm", origin->port(), false);
    ASSERT_TRUE(wrong);
    code = wrong->process().wait(15s);
    ASSERT_TRUE(code.has_value());
    EXPECT_NE(*code, 0);
    EXPECT_TRUE(relay->wait_published("bob", "llm", 1s, false));
}

TEST_F(RelayServer, TenantsAreIsolated) {
    start_relay();
    auto other = streaming_origin::start();
    ASSERT_TRUE(other);
    auto a = publish("alice", "web", origin->port());
    auto b = publish("bob", "web", (*other)->port());

    const int a_before = origin->requests();
    const int b_before = (*other)->requests();
    EXPECT_EQ(request(get("/t/alice/web/hello")).status, 200);
    EXPECT_EQ(origin->requests() - a_before, 1);
    EXPECT_EQ((*other)->requests() - b_before, 0);
    EXPECT_EQ(request(get("/t/bob/web/hello")).status, 200);
    EXPECT_EQ((*other)->requests() - b_before, 1);
    EXPECT_EQ(origin->requests() - a_before, 1);

    // bob's token cannot take alice's name space: the SSH user is bob's tenant.
    auto bob_tok = relay->mint("bob", "web,llm");
    ASSERT_TRUE(bob_tok);
    auto sneaky = relay->publish("alice", *bob_tok, "llm", (*other)->port(), false);
    ASSERT_TRUE(sneaky);
    EXPECT_TRUE(sneaky->process().wait(15s).has_value());
    EXPECT_EQ(request(get("/t/alice/llm/hello")).status, 503);

    // When bob leaves, alice's name still works and bob's is gone.
    b.process().terminate();
    EXPECT_TRUE(relay->wait_published("bob", "web", 10s, false));
    EXPECT_EQ(request(get("/t/bob/web/hello")).status, 503);
    EXPECT_EQ(request(get("/t/alice/web/hello")).status, 200);
}

TEST_F(RelayServer, TokenExpiringMidTunnelClosesIt) {
    start_relay();
    auto tok =
        relay->craft(fmt::format(R"({{"sub":"alice","exp":{},"allow":["llm"]}})", now_s() + 8));
    auto c = relay->publish("alice", tok, "llm", origin->port());
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(request(get("/t/alice/llm/hello")).status, 200);
    EXPECT_TRUE(relay->wait_published("alice", "llm", 15s, false)) << relay->log();
    EXPECT_NE(relay->log().find("token expired"), std::string::npos);
    EXPECT_TRUE(c->process().wait(10s).has_value()) << "ssh should see the relay end the session";
}

TEST_F(RelayServer, RateLimitAndStreamCap) {
    start_relay(
        {.extra_yaml = "allow_plaintext: true\nlimits:\n  route_rps: 1\n  route_burst: 2\n"});
    auto client = publish("alice", "llm", origin->port());
    int limited = 0;
    std::string retry_after;
    for (int i = 0; i < 6; ++i) {
        auto r = request(get("/t/alice/llm/hello"));
        if (r.status == 429) {
            ++limited;
            EXPECT_EQ(error_code_of(r), "rate_limited");
            if (auto p = r.head.find("Retry-After: "); p != std::string::npos)
                retry_after = r.head.substr(p + 13, 1);
        }
    }
    EXPECT_GE(limited, 3);
    EXPECT_FALSE(retry_after.empty());
}

TEST_F(RelayServer, StreamCapAnswers503) {
    start_relay();
    auto client = publish("alice", "llm", origin->port(), "llm", {"--max-streams", "1"});
    std::optional<http_reply> slow;
    std::thread t([&] {
        auto r = http_request(relay->public_port(), get("/t/alice/llm/slow?ms=2000"), 10s);
        if (r) slow = *r;
    });
    ASSERT_TRUE(streaming_origin::wait_until([&] { return origin->requests() >= 1; }, 5s));
    auto r = request(get("/t/alice/llm/hello"));
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(error_code_of(r), "stream_limit");
    t.join();
    ASSERT_TRUE(slow);
    EXPECT_EQ(slow->status, 200);
    auto after = request(get("/t/alice/llm/hello"));
    EXPECT_EQ(after.status, 200) << after.raw << "\n" << relay->log();
}

TEST_F(RelayServer, BreakerOpensAndRecovers) {
    start_relay({.extra_yaml =
                     "allow_plaintext: true\nbreaker:\n  failures: 2\n  cooldown: 1s\n"
                     "limits:\n  tenant_rps: 1000\n  tenant_burst: 1000\n  route_rps: 1000\n"
                     "  route_burst: 1000\n"});
    auto client = publish("alice", "llm", origin->port());
    EXPECT_EQ(request(get("/t/alice/llm/drop")).status, 502);
    EXPECT_EQ(request(get("/t/alice/llm/drop")).status, 502);
    auto open = request(get("/t/alice/llm/hello"));
    EXPECT_EQ(open.status, 503);
    EXPECT_EQ(error_code_of(open), "circuit_open");
    EXPECT_NE(open.head.find("Retry-After:"), std::string::npos);
    // After the cool-down one probe goes through and closes the breaker.
    bool recovered = streaming_origin::wait_until(
        [&] { return request(get("/t/alice/llm/hello")).status == 200; }, 5s);
    EXPECT_TRUE(recovered);
    EXPECT_EQ(request(get("/t/alice/llm/hello")).status, 200);
}

TEST_F(RelayServer, OversizedAndSlowHeaders) {
    start_relay({.extra_yaml = "allow_plaintext: true\nlimits:\n  header_read_timeout: 1s\n"});
    auto big = request(fmt::format("GET /t/a/b/ HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                                   std::string(20000, 'a')));
    EXPECT_EQ(big.status, 431);

    // A head that never completes is answered 408 and dropped.
    int fd = connect_tcp("127.0.0.1", relay->public_port());
    ASSERT_GE(fd, 0);
    std::string part = "GET /t/a/b/ HTTP/1.1\r\nHost: x\r\n";
    ASSERT_GT(::send(fd, part.data(), part.size(), MSG_NOSIGNAL), 0);
    const auto start = steady::now();
    std::string raw;
    char buf[4096];
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 10000) <= 0) break;
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        raw.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    EXPECT_LT(steady::now() - start, 8s);
    EXPECT_EQ(raw.substr(0, 12), "HTTP/1.1 408") << raw;
    // The relay still serves others.
    EXPECT_EQ(request(get("/t/a/b/")).status, 503);
}

TEST_F(RelayServer, StalledClientIsDetectedAndRequestsFailFast) {
    start_relay(
        {.extra_yaml =
             "allow_plaintext: true\nliveness:\n  ping_interval: 1s\n  ping_timeout: 1s\n"});
    auto client = publish("alice", "llm", origin->port());
    EXPECT_EQ(request(get("/t/alice/llm/hello")).status, 200);
    client.process().signal(SIGSTOP);
    const auto stopped = steady::now();
    EXPECT_TRUE(relay->wait_published("alice", "llm", 15s, false)) << relay->log();
    const auto detected =
        std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - stopped);
    EXPECT_LT(detected.count(), 8000);
    const auto t0 = steady::now();
    auto r = request(get("/t/alice/llm/hello"));
    EXPECT_EQ(r.status, 503);
    EXPECT_LT(steady::now() - t0, 2s);
    client.process().signal(SIGCONT);
}

TEST_F(RelayServer, GracefulShutdownDrainsAStreamingResponse) {
    start_relay();
    auto client = publish("alice", "llm", origin->port());
    int fd = connect_tcp("127.0.0.1", relay->public_port());
    ASSERT_GE(fd, 0);
    std::string req = get("/t/alice/llm/stream?n=8&ms=200");
    ASSERT_GT(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), 0);
    std::string raw;
    char buf[4096];
    bool signalled = false;
    const auto deadline = steady::now() + 15s;
    while (steady::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 500) <= 0) continue;
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        raw.append(buf, static_cast<std::size_t>(n));
        if (!signalled && raw.find("{\"i\":0}") != std::string::npos) {
            relay->process().signal(SIGTERM);
            signalled = true;
        }
    }
    ::close(fd);
    ASSERT_TRUE(signalled);
    EXPECT_NE(raw.find("{\"i\":7}"), std::string::npos) << raw;
    EXPECT_NE(raw.find("0\r\n\r\n"), std::string::npos);
    auto code = relay->process().wait(10s);
    ASSERT_TRUE(code.has_value());
    EXPECT_EQ(*code, 0);
    EXPECT_NE(relay->log().find("relay shutting down"), std::string::npos) << relay->log();
}

TEST_F(RelayServer, UpgradedConnectionsPassThroughRaw) {
    start_relay();
    auto client = publish("alice", "llm", origin->port());
    int fd = connect_tcp("127.0.0.1", relay->public_port());
    ASSERT_GE(fd, 0);
    std::string req =
        "GET /t/alice/llm/upgrade HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: "
        "Upgrade\r\n\r\n";
    ASSERT_GT(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), 0);
    std::string raw;
    char buf[4096];
    auto read_until = [&](const std::string& what) {
        while (raw.find(what) == std::string::npos) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 5000) <= 0) return false;
            ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) return false;
            raw.append(buf, static_cast<std::size_t>(n));
        }
        return true;
    };
    ASSERT_TRUE(read_until("\r\n\r\n")) << raw;
    EXPECT_EQ(raw.substr(0, 12), "HTTP/1.1 101");
    for (int i = 0; i < 3; ++i) {
        std::string msg = fmt::format("frame-{}|", i);
        ASSERT_GT(::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL), 0);
        EXPECT_TRUE(read_until(msg)) << raw;
    }
    ::close(fd);
}

TEST_F(RelayServer, TlsListenerAndAuditLog) {
    relay_options o;
    o.audit_log = true;
    o.tls = true;
    start_relay(o);
    auto client = publish("alice", "llm", origin->port());
    auto r = run({"curl", "-sS", "--max-time", "10", "--cacert", relay->cert_path(),
                  fmt::format("https://127.0.0.1:{}/t/alice/llm/headers", relay->public_port())});
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_NE(r.out.find("X-Forwarded-Proto: https"), std::string::npos) << r.out;
    // Plain HTTP on the TLS port gets nothing.
    auto plain = http_request(relay->public_port(), get("/t/alice/llm/hello"), 3s);
    EXPECT_FALSE(plain && plain->status == 200);

    client.process().terminate();
    ASSERT_TRUE(relay->wait_published("alice", "llm", 10s, false));
    ASSERT_TRUE(streaming_origin::wait_until(
        [&] {
            return read_text_file(relay->audit_path()).value_or("").find("\"detach\"") !=
                   std::string::npos;
        },
        5s));
    auto audit = read_text_file(relay->audit_path()).value_or("");
    EXPECT_NE(audit.find("\"event\":\"attach\""), std::string::npos) << audit;
    EXPECT_NE(audit.find("\"event\":\"publish\""), std::string::npos) << audit;
    auto verify = run({tunnel_binary(), "audit", "verify", relay->audit_path()});
    EXPECT_TRUE(verify.ok()) << verify.describe();
}

}  // namespace
}  // namespace tunnel::test
