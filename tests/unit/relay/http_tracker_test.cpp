#include "relay/http_tracker.hpp"

#include <gtest/gtest.h>

namespace tunnel::relay {
namespace {

TEST(RelayHttpTracker, RequestHeadLengthThenChunkedBody) {
    auto t = http_tracker::for_request(8192, 1 << 20);
    const std::string head =
        "POST /t/a/b/x?y=1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    const std::string body = "5\r\nhello\r\n0\r\n\r\n";
    const std::string next = "GET / HTTP/1.1\r\n";
    std::string all = head + body + next;
    EXPECT_EQ(t.feed(all), head.size());  // stops at the end of the head
    ASSERT_TRUE(t.header_done());
    EXPECT_EQ(t.head().method, "POST");
    EXPECT_EQ(t.head().target, "/t/a/b/x?y=1");
    ASSERT_NE(t.head().find("host"), nullptr);
    EXPECT_EQ(*t.head().find("HOST"), "h");
    EXPECT_TRUE(t.head().chunked);
    EXPECT_FALSE(t.done());
    // The body, raw, up to its end; the next request is not consumed.
    EXPECT_EQ(t.feed(std::string_view(all).substr(head.size())), body.size());
    EXPECT_TRUE(t.done());
}

TEST(RelayHttpTracker, HeadArrivingInPiecesIsFedOnce) {
    auto t = http_tracker::for_request(8192, 1024);
    std::string in = "GET /x HTTP/1.1\r\nHo";
    in.erase(0, t.feed(in));  // the parser may take the request line already
    EXPECT_FALSE(t.header_done());
    in += "st: x\r\n\r\n";
    in.erase(0, t.feed(in));
    ASSERT_TRUE(t.header_done());
    EXPECT_EQ(t.problem(), http_problem::none);
    EXPECT_EQ(t.head().target, "/x");
    ASSERT_NE(t.head().find("Host"), nullptr);
    EXPECT_TRUE(in.empty());
}

TEST(RelayHttpTracker, LimitsAndMalformedHeads) {
    auto big = http_tracker::for_request(64, 1024);
    EXPECT_EQ(big.feed("GET / HTTP/1.1\r\nX: " + std::string(200, 'a') + "\r\n\r\n"), 0u);
    EXPECT_EQ(big.problem(), http_problem::header_too_large);

    auto body = http_tracker::for_request(8192, 10);
    (void)body.feed("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n");
    EXPECT_EQ(body.problem(), http_problem::body_too_large);

    auto bad = http_tracker::for_request(8192, 10);
    (void)bad.feed("NOT HTTP AT ALL\r\n\r\n");
    EXPECT_EQ(bad.problem(), http_problem::bad_message);
}

TEST(RelayHttpTracker, ResponsesEndWhereTheyEnd) {
    auto cl = http_tracker::for_response(false);
    const std::string r = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
    EXPECT_EQ(cl.feed(r + "extra"), r.size());
    EXPECT_TRUE(cl.done());
    EXPECT_EQ(cl.head().status, 200);
    EXPECT_TRUE(cl.head().keep_alive);

    // A HEAD response has no body even with a Content-Length.
    auto head = http_tracker::for_response(true);
    (void)head.feed("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
    EXPECT_TRUE(head.done());

    // 100 Continue is passed over; the final response decides.
    auto cont = http_tracker::for_response(false);
    (void)cont.feed("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n");
    EXPECT_TRUE(cont.done());
    EXPECT_EQ(cont.head().status, 204);

    // A body delimited by the connection's end.
    auto eof = http_tracker::for_response(false);
    (void)eof.feed("HTTP/1.1 200 OK\r\n\r\npartial");
    EXPECT_FALSE(eof.done());
    eof.feed_eof();
    EXPECT_TRUE(eof.done());
    EXPECT_FALSE(eof.head().keep_alive);

    // Nothing at all before the close is a problem, not a crash.
    auto nothing = http_tracker::for_response(false);
    nothing.feed_eof();
    EXPECT_EQ(nothing.problem(), http_problem::bad_message);
}

TEST(RelayHttpTracker, StreamedChunksAreConsumedAsTheyArrive) {
    auto t = http_tracker::for_response(false);
    std::string head =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: "
        "application/x-ndjson\r\n\r\n";
    EXPECT_EQ(t.feed(head), head.size());
    EXPECT_FALSE(t.done());
    // A chunk's data is taken (so forwarded) as soon as it arrives; only its
    // trailing CRLF waits for what follows.
    std::string in = "8\r\n{\"i\":0}\n\r\n";
    const std::size_t n = t.feed(in);
    EXPECT_GE(n, 11u);
    EXPECT_FALSE(t.done());
    in.erase(0, n);
    in += "0\r\n\r\n";
    EXPECT_EQ(t.feed(in), in.size());
    EXPECT_TRUE(t.done());
}

}  // namespace
}  // namespace tunnel::relay
