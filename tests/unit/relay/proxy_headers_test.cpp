#include "relay/proxy_headers.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "relay/http_tracker.hpp"

namespace tunnel::relay {
namespace {

// The head as the relay's tracker parses it.
http_head request_head(const std::string& text) {
    auto t = http_tracker::for_request(64 * 1024, 1 << 20);
    (void)t.feed(text);
    EXPECT_TRUE(t.header_done()) << text;
    EXPECT_EQ(t.problem(), http_problem::none) << t.problem_detail();
    return t.head();
}

http_head response_head(const std::string& text, bool head_request = false) {
    auto t = http_tracker::for_response(head_request);
    (void)t.feed(text);
    EXPECT_TRUE(t.header_done()) << text;
    return t.head();
}

// The fields of a head text, in order.
std::vector<std::pair<std::string, std::string>> fields_of(const std::string& text) {
    std::vector<std::pair<std::string, std::string>> out;
    std::size_t at = text.find("\r\n") + 2;
    while (at < text.size()) {
        const auto end = text.find("\r\n", at);
        if (end == at) break;
        const auto line = text.substr(at, end - at);
        const auto colon = line.find(": ");
        out.emplace_back(line.substr(0, colon), line.substr(colon + 2));
        at = end + 2;
    }
    return out;
}

std::vector<std::string> values(const std::string& text, const std::string& name) {
    std::vector<std::string> out;
    for (auto& [n, v] : fields_of(text))
        if (n == name) out.push_back(v);
    return out;
}

const forwarding from_v4{"198.51.100.7", false};

TEST(RelayProxyHeaders, HopByHopFieldsNeverReachTheOrigin) {
    auto head = request_head(
        "GET /t/acme/web/headers HTTP/1.1\r\nHost: hop.test\r\n"
        "Connection: keep-alive, X-Secret-Hop\r\nConnection: X-Other-Hop\r\n"
        "X-Secret-Hop: 1\r\nx-secret-hop: 2\r\nX-Other-Hop: 3\r\nKeep-Alive: timeout=5\r\n"
        "Proxy-Connection: keep-alive\r\nTE: trailers\r\n"
        "Proxy-Authorization: Basic Zm9vOmJhcg==\r\nUpgrade: h2c\r\nX-Kept: yes\r\n\r\n");
    EXPECT_FALSE(head.upgrade);  // Upgrade without "Connection: upgrade" asks for nothing
    const auto out = request_for_origin(head, "/headers", from_v4);
    EXPECT_EQ(out.substr(0, out.find("\r\n")), "GET /headers HTTP/1.1");
    for (const char* gone :
         {"Connection", "X-Secret-Hop", "x-secret-hop", "X-Other-Hop", "Keep-Alive",
          "Proxy-Connection", "TE", "Proxy-Authorization", "Upgrade"})
        EXPECT_TRUE(values(out, gone).empty()) << gone << " reached the origin:\n" << out;
    EXPECT_EQ(values(out, "X-Kept"), std::vector<std::string>{"yes"});
    EXPECT_EQ(values(out, "Host"), std::vector<std::string>{"hop.test"});
    EXPECT_EQ(out.substr(out.size() - 4), "\r\n\r\n");
}

TEST(RelayProxyHeaders, ForwardingFieldsAreTheRelaysOwn) {
    auto head = request_head(
        "GET /t/acme/web/x HTTP/1.1\r\nHost: app.example:8443\r\nX-Forwarded-For: 6.6.6.6\r\n"
        "Forwarded: for=6.6.6.6;host=evil.example\r\nX-Real-IP: 6.6.6.6\r\n"
        "X-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\n"
        "X-Forwarded-Port: 1\r\n\r\n");
    const auto out = request_for_origin(head, "/x", from_v4);
    EXPECT_EQ(out.find("6.6.6.6"), std::string::npos) << out;
    EXPECT_EQ(out.find("evil.example"), std::string::npos) << out;
    EXPECT_TRUE(values(out, "X-Forwarded-Port").empty());
    EXPECT_EQ(values(out, "X-Forwarded-For"), std::vector<std::string>{"198.51.100.7"});
    EXPECT_EQ(values(out, "X-Real-IP"), std::vector<std::string>{"198.51.100.7"});
    EXPECT_EQ(values(out, "X-Forwarded-Proto"), std::vector<std::string>{"http"});
    EXPECT_EQ(values(out, "X-Forwarded-Host"), std::vector<std::string>{"app.example:8443"});
    // A host with a port is not a token: quoted (RFC 7239 §4).
    EXPECT_EQ(values(out, "Forwarded"),
              std::vector<std::string>{"for=198.51.100.7;proto=http;host=\"app.example:8443\""});
}

TEST(RelayProxyHeaders, ForwardedQuotesIpv6AndOddHosts) {
    EXPECT_EQ(forwarded_node("192.0.2.60"), "192.0.2.60");
    EXPECT_EQ(forwarded_node("2001:db8:cafe::17"), "\"[2001:db8:cafe::17]\"");
    EXPECT_EQ(forwarded_node("::1"), "\"[::1]\"");
    const std::string plain = "example.com";
    EXPECT_EQ(forwarded_value({"2001:db8::1", true}, &plain),
              "for=\"[2001:db8::1]\";proto=https;host=example.com");
    const std::string odd = R"(a"b\c)";
    EXPECT_EQ(forwarded_value({"192.0.2.1", false}, &odd),
              R"(for=192.0.2.1;proto=http;host="a\"b\\c")");
    EXPECT_EQ(forwarded_value({"192.0.2.1", false}, nullptr), "for=192.0.2.1;proto=http");
}

TEST(RelayProxyHeaders, ConnectionCannotNameFramingOrHost) {
    // Naming Content-Length in Connection must not strip it: the origin would
    // read the body as the next request.
    auto head = request_head(
        "POST /t/a/b/ HTTP/1.1\r\nHost: h\r\nConnection: Content-Length, Host, "
        "Transfer-Encoding, X-Drop\r\nContent-Length: 5\r\nX-Drop: 1\r\n\r\n");
    const auto out = request_for_origin(head, "/", from_v4);
    EXPECT_EQ(values(out, "Content-Length"), std::vector<std::string>{"5"});
    EXPECT_EQ(values(out, "Host"), std::vector<std::string>{"h"});
    EXPECT_TRUE(values(out, "X-Drop").empty());
    EXPECT_TRUE(is_hop_by_hop(head, "x-drop"));
    EXPECT_FALSE(is_hop_by_hop(head, "Content-Length"));
    EXPECT_FALSE(is_hop_by_hop(head, "X-Other"));
}

TEST(RelayProxyHeaders, ConnectionTheRelayAsksForItself) {
    // The caller's "Connection: close" is about its own connection; the one
    // to the origin stays open for the tunnel's keep-alive pool.
    auto close = request_head("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    EXPECT_TRUE(values(request_for_origin(close, "/", from_v4), "Connection").empty());
    auto close10 = request_head("GET / HTTP/1.0\r\n\r\n");
    EXPECT_EQ(values(request_for_origin(close10, "/", from_v4), "Connection"),
              std::vector<std::string>{"keep-alive"});
    auto keep = request_head("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    EXPECT_TRUE(values(request_for_origin(keep, "/", from_v4), "Connection").empty());
    auto old = request_head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    const auto out = request_for_origin(old, "/", from_v4);
    EXPECT_EQ(out.substr(0, out.find("\r\n")), "GET / HTTP/1.0");
    EXPECT_EQ(values(out, "Connection"), std::vector<std::string>{"keep-alive"});
}

TEST(RelayProxyHeaders, OnlyARealUpgradeRequestKeepsUpgrade) {
    auto ws = request_head(
        "GET /t/a/b/ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n"
        "Upgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n");
    EXPECT_TRUE(ws.upgrade);
    auto out = request_for_origin(ws, "/ws", from_v4);
    EXPECT_EQ(values(out, "Upgrade"), std::vector<std::string>{"websocket"});
    EXPECT_EQ(values(out, "Connection"), std::vector<std::string>{"upgrade"});
    EXPECT_EQ(values(out, "Sec-WebSocket-Key"), std::vector<std::string>{"k"});

    // Beast 1.74 calls this an upgrade; it asks for no protocol at all.
    auto bare = request_head("GET /t/a/b/raw HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n");
    EXPECT_FALSE(bare.upgrade);
    out = request_for_origin(bare, "/raw", from_v4);
    EXPECT_TRUE(values(out, "Connection").empty()) << out;
    EXPECT_TRUE(values(out, "Upgrade").empty());

    // HTTP/1.0 has no upgrade (RFC 9110 §7.8).
    EXPECT_FALSE(request_head("GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
                     .upgrade);
}

TEST(RelayProxyHeaders, FramingThatIsNotExactlyChunkedIsRefused) {
    const std::string start = "POST /t/a/b/ HTTP/1.1\r\nHost: h\r\n";
    for (const char* fields : {
             "Transfer-Encoding: gzip, chunked\r\n",
             "Transfer-Encoding: chunked, identity\r\n",
             "Transfer-Encoding: xchunked\r\n",
             "Transfer-Encoding: \"chunked\"\r\n",
             "Transfer-Encoding: identity\r\n",
             "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
             "Transfer-Encoding: gzip\r\nContent-Length: 5\r\n",
             "Content-Length: 5\r\nContent-Length: 5\r\n",
             "Content-Length: 5, 5\r\n",
             "Host: other\r\n",
         }) {
        auto t = http_tracker::for_request(8192, 1 << 20);
        (void)t.feed(start + fields + "\r\n");
        // Beast refuses some of these itself (400 either way); the rest must
        // be refused here.
        if (t.problem() != http_problem::none) continue;
        ASSERT_TRUE(t.header_done()) << fields;
        EXPECT_TRUE(framing_problem(t.head()).has_value()) << fields;
    }
    // Transfer-Encoding with Content-Length, in either order: Beast refuses
    // one order, framing_problem the other (when it gets it).
    http_head both;
    both.method = "POST";
    both.fields = {{"Host", "h"}, {"Content-Length", "16"}, {"Transfer-Encoding", "chunked"}};
    EXPECT_TRUE(framing_problem(both).has_value());
    http_head old;
    old.version = 10;
    old.fields = {{"Transfer-Encoding", "chunked"}};
    EXPECT_TRUE(framing_problem(old).has_value());
    http_head no_host;
    EXPECT_TRUE(framing_problem(no_host).has_value());
}

TEST(RelayProxyHeaders, PlainFramingIsAccepted) {
    for (const char* fields :
         {"", "Content-Length: 5\r\n", "Transfer-Encoding: chunked\r\n",
          "Transfer-Encoding: CHUNKED\r\n", "Transfer-Encoding:  chunked \r\n"}) {
        auto head = request_head(std::string("POST / HTTP/1.1\r\nHost: h\r\n") + fields + "\r\n");
        EXPECT_FALSE(framing_problem(head).has_value()) << fields << *framing_problem(head);
    }
    EXPECT_FALSE(framing_problem(request_head("GET / HTTP/1.0\r\n\r\n")).has_value());
}

TEST(RelayProxyHeaders, ResponsesLoseTheirHopByHopFields) {
    auto res = response_head(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: keep-alive, X-Hop\r\n"
        "X-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nUpgrade: h2c\r\n"
        "Transfer-Encoding: chunked\r\nX-Kept: yes\r\n\r\n");
    auto out = response_for_caller(res, "", false);
    EXPECT_EQ(out.substr(0, out.find("\r\n")), "HTTP/1.1 200 OK");
    for (const char* gone : {"Connection", "X-Hop", "Keep-Alive", "Proxy-Authenticate", "Upgrade"})
        EXPECT_TRUE(values(out, gone).empty()) << gone << ":\n" << out;
    EXPECT_EQ(values(out, "Transfer-Encoding"), std::vector<std::string>{"chunked"});
    EXPECT_EQ(values(out, "X-Kept"), std::vector<std::string>{"yes"});
    EXPECT_EQ(values(response_for_caller(res, "close", false), "Connection"),
              std::vector<std::string>{"close"});

    // A real 101 goes to the caller whole.
    auto switching = response_head(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Accept: x\r\n\r\n");
    out = response_for_caller(switching, "", true);
    EXPECT_EQ(out,
              "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
              "Sec-WebSocket-Accept: x\r\n\r\n");
}

}  // namespace
}  // namespace tunnel::relay
