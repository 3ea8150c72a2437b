// URL parsing, refusal mapping and token files of the WebSocket client.
#include <fstream>

#include <gtest/gtest.h>
#include <unistd.h>

#include "transport/websocket_client.hpp"

namespace tunnel::transport {
namespace {

TEST(WsUrl, ParsesSchemesPortsAndTargets) {
    auto u = parse_ws_url("wss://Relay.Example.com/v1/tunnel");
    ASSERT_TRUE(u) << u.error().message;
    EXPECT_TRUE(u->tls);
    EXPECT_EQ(u->host, "relay.example.com");
    EXPECT_EQ(u->port, 443);
    EXPECT_EQ(u->target, "/v1/tunnel");
    EXPECT_EQ(u->host_header(), "relay.example.com");
    EXPECT_EQ(u->known_hosts_name(), "[relay.example.com]:443");

    u = parse_ws_url("ws://127.0.0.1:8080");
    ASSERT_TRUE(u) << u.error().message;
    EXPECT_FALSE(u->tls);
    EXPECT_EQ(u->port, 8080);
    EXPECT_EQ(u->target, "/");
    EXPECT_EQ(u->host_header(), "127.0.0.1:8080");
    EXPECT_EQ(u->to_string(), "ws://127.0.0.1:8080/");

    u = parse_ws_url("ws://h?x=1");
    ASSERT_TRUE(u);
    EXPECT_EQ(u->target, "/?x=1");
    EXPECT_EQ(u->port, 80);
}

TEST(WsUrl, Ipv6LiteralsNeedBrackets) {
    auto u = parse_ws_url("ws://[::1]:9000/v1/tunnel");
    ASSERT_TRUE(u) << u.error().message;
    EXPECT_EQ(u->host, "::1");
    EXPECT_EQ(u->port, 9000);
    EXPECT_EQ(u->host_header(), "[::1]:9000");
    EXPECT_EQ(u->known_hosts_name(), "[::1]:9000");
    auto bad = parse_ws_url("ws://::1:9000/");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("brackets"), std::string::npos);
    EXPECT_FALSE(parse_ws_url("ws://[::1/"));
}

TEST(WsUrl, RefusesWhatItCannotUseAndSaysWhatToWrite) {
    struct bad_case {
        const char* text;
        const char* hint;
    };
    const bad_case cases[] = {
        {"https://relay/v1/tunnel", "use wss://"},
        {"http://relay/", "use ws://"},
        {"ftp://relay/", "ws:// or wss://"},
        {"relay.example.com", "ws://HOST"},
        {"wss://user:secret@relay/", "--token-file"},
        {"wss://relay/#frag", "fragment"},
        {"wss:///v1/tunnel", "no host"},
        {"wss://relay:0/", "1 to 65535"},
        {"wss://relay:65536/", "1 to 65535"},
        {"wss://relay:8x/", "1 to 65535"},
        {"wss://relay:/", "empty port"},
        {"wss://relay/a b", "percent-encode"},
    };
    for (const auto& c : cases) {
        auto u = parse_ws_url(c.text);
        ASSERT_FALSE(u) << c.text;
        EXPECT_EQ(u.error().code, core::errc::invalid_argument) << c.text;
        EXPECT_NE(u.error().message.find(c.hint), std::string::npos)
            << c.text << ": " << u.error().message;
    }
}

TEST(WsRefusal, UnauthorizedCarriesTheRelaysMessage) {
    auto url = *parse_ws_url("wss://relay:8443/v1/tunnel");
    auto e = refusal_error(
        url, 401, "Unauthorized",
        R"({"error":"token_expired","message":"the token expired at 2026-01-01T00:00:00Z; mint a new one"})");
    EXPECT_EQ(e.code, core::errc::auth_failed);
    EXPECT_NE(e.message.find("401 token_expired"), std::string::npos) << e.message;
    EXPECT_NE(e.message.find("mint a new one"), std::string::npos) << e.message;
    EXPECT_NE(e.message.find("wss://relay:8443/v1/tunnel"), std::string::npos) << e.message;
}

TEST(WsRefusal, UnauthorizedWithoutBodyPointsAtTheTokenFile) {
    auto url = *parse_ws_url("ws://127.0.0.1:1/");
    auto e = refusal_error(url, 401, "Unauthorized", "");
    EXPECT_EQ(e.code, core::errc::auth_failed);
    EXPECT_NE(e.message.find("--token-file"), std::string::npos) << e.message;
}

TEST(WsRefusal, ForbiddenIsDeniedAndOthersNameTheStatus) {
    auto url = *parse_ws_url("ws://relay/v1/tunnel");
    auto forbidden =
        refusal_error(url, 403, "Forbidden",
                      R"({"error":"tenant_disabled","message":"tenant acme is disabled"})");
    EXPECT_EQ(forbidden.code, core::errc::auth_failed);  // fatal, not retried
    EXPECT_NE(forbidden.message.find("tenant acme is disabled"), std::string::npos);

    auto missing = refusal_error(url, 404, "Not Found", "<html>\n<b>nope</b></html>");
    EXPECT_EQ(missing.code, core::errc::invalid_argument);
    EXPECT_NE(missing.message.find("/v1/tunnel"), std::string::npos);
    EXPECT_EQ(missing.message.find('\n'), std::string::npos) << "one line: " << missing.message;

    auto busy = refusal_error(url, 503, "Service Unavailable", "");
    EXPECT_EQ(busy.code, core::errc::connection_failed);  // retryable
    EXPECT_NE(busy.message.find("503"), std::string::npos);

    auto odd = refusal_error(url, 200, "OK", "hello");
    EXPECT_EQ(odd.code, core::errc::protocol_error);
    EXPECT_NE(odd.message.find("HTTP 200 OK"), std::string::npos);
    EXPECT_NE(odd.message.find("hello"), std::string::npos);
}

class TokenFile : public ::testing::Test {
  protected:
    std::string write(const std::string& content) {
        std::ofstream(path_, std::ios::binary) << content;
        return path_;
    }
    void TearDown() override { std::remove(path_.c_str()); }
    // One file per test and process: ctest runs the tests of this suite in parallel.
    std::string path_ = ::testing::TempDir() + "tunnel-token-test-" +
                        ::testing::UnitTest::GetInstance()->current_test_info()->name() + "-" +
                        std::to_string(::getpid());
};

TEST_F(TokenFile, TrimsWhitespace) {
    auto t = read_token_file(write("  eyJhbGciOi.payload.sig\n\n"));
    ASSERT_TRUE(t) << t.error().message;
    EXPECT_EQ(*t, "eyJhbGciOi.payload.sig");
}

TEST_F(TokenFile, RefusesEmptyMultiWordAndMissingFiles) {
    auto empty = read_token_file(write(" \n"));
    ASSERT_FALSE(empty);
    EXPECT_NE(empty.error().message.find("empty"), std::string::npos);
    auto two = read_token_file(write("a.b.c\nd.e.f\n"));
    ASSERT_FALSE(two);
    EXPECT_EQ(two.error().message.find("a.b.c"), std::string::npos) << "never echo a token";
    auto missing = read_token_file("/nonexistent/tunnel-token");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code, core::errc::not_found);
}

}  // namespace
}  // namespace tunnel::transport
