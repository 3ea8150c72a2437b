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
    const std::string h = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";
    const std::string all = h + "abcextra";
    // The head first (the relay rebuilds it), then the body up to its end.
    EXPECT_EQ(cl.feed(all), h.size());
    EXPECT_TRUE(cl.header_done());
    EXPECT_FALSE(cl.done());
    EXPECT_EQ(cl.head().status, 200);
    EXPECT_EQ(cl.head().reason, "OK");
    EXPECT_TRUE(cl.head().keep_alive);
    EXPECT_EQ(cl.feed(std::string_view(all).substr(h.size())), 3u);
    EXPECT_TRUE(cl.done());

    // A HEAD response has no body even with a Content-Length.
    auto head = http_tracker::for_response(true);
    (void)head.feed("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
    EXPECT_TRUE(head.done());

    // 100 Continue is a head of its own; the final response decides.
    auto cont = http_tracker::for_response(false);
    const std::string interim = "HTTP/1.1 100 Continue\r\n\r\n";
    const std::string both = interim + "HTTP/1.1 204 No Content\r\n\r\n";
    EXPECT_EQ(cont.feed(both), interim.size());
    EXPECT_TRUE(cont.header_done());
    EXPECT_TRUE(cont.interim());
    EXPECT_FALSE(cont.done());
    EXPECT_EQ(cont.head().status, 100);
    EXPECT_EQ(cont.feed(std::string_view(both).substr(interim.size())),
              both.size() - interim.size());
    EXPECT_FALSE(cont.interim());
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
    EXPECT_FALSE(t.interim());
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

// Feeds `text` in reads of `step` bytes, as the relay does (what the parser
// took is never offered again); returns the tracker's problem.
http_problem feed_in_steps(http_tracker& t, const std::string& text, std::size_t step) {
    std::string in;
    for (std::size_t at = 0; at < text.size() && !t.header_done(); at += step) {
        in += text.substr(at, step);
        in.erase(0, t.feed(in));
        if (t.problem() != http_problem::none) break;
    }
    return t.problem();
}

std::string head_of_size(std::size_t size) {
    // A request line, Host, then small fields, padded to exactly `size`.
    std::string head = "GET /t/acme/web/hello HTTP/1.1\r\nHost: x\r\n";
    for (int n = 0; head.size() + 112 < size; ++n)
        head += "X-H" + std::to_string(n) + ": " + std::string(40, 'b') + "\r\n";
    const std::size_t pad = size - head.size() - 2 - 6;  // "X-P: " + "\r\n" + final "\r\n"
    head += "X-P: " + std::string(pad - 1, 'p') + "\r\n\r\n";
    EXPECT_EQ(head.size(), size);
    return head;
}

TEST(RelayHttpTracker, HeadLimitCountsTheWholeHeadHoweverItArrives) {
    const std::uint32_t limit = 16384;
    // 400 small fields, 19.9 KB: Beast checks its limit per read and takes
    // complete lines early, so in pieces this head used to get through.
    std::string many = "GET /t/acme/web/hello HTTP/1.1\r\nHost: x\r\n";
    for (int n = 0; n < 400; ++n)
        many += "X-H" + std::to_string(n) + ": " + std::string(40, 'b') + "\r\n";
    many += "\r\n";
    ASSERT_GT(many.size(), 19000u);
    for (std::size_t step : {1u, 7u, 512u, 1460u, 4096u, 16384u, 65536u}) {
        auto t = http_tracker::for_request(limit, 1 << 20);
        EXPECT_EQ(feed_in_steps(t, many, step), http_problem::header_too_large)
            << "reads of " << step;
    }
    // Exactly at the limit is accepted, one byte over is not, in any reads.
    for (std::size_t step : {1u, 100u, 1460u, 16384u}) {
        auto at = http_tracker::for_request(limit, 1 << 20);
        EXPECT_EQ(feed_in_steps(at, head_of_size(limit), step), http_problem::none) << step;
        EXPECT_TRUE(at.header_done()) << step;
        auto over = http_tracker::for_request(limit, 1 << 20);
        EXPECT_EQ(feed_in_steps(over, head_of_size(limit + 1), step),
                  http_problem::header_too_large)
            << step;
    }
    // A long request line and long fields in one read add up too.
    auto halves = http_tracker::for_request(limit, 1 << 20);
    (void)halves.feed("GET /" + std::string(10000, 'a') +
                      " HTTP/1.1\r\nHost: x\r\nX: " + std::string(10000, 'b') + "\r\n\r\n");
    EXPECT_EQ(halves.problem(), http_problem::header_too_large);
}

TEST(RelayHttpTracker, UpgradeNeedsAnUpgradeField) {
    auto bare = http_tracker::for_request(8192, 1024);
    (void)bare.feed("GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n\r\n");
    ASSERT_TRUE(bare.header_done());
    EXPECT_FALSE(bare.head().upgrade);
    auto ws = http_tracker::for_request(8192, 1024);
    (void)ws.feed("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    EXPECT_TRUE(ws.head().upgrade);
    auto no_option = http_tracker::for_request(8192, 1024);
    (void)no_option.feed("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n");
    EXPECT_FALSE(no_option.head().upgrade);
}

}  // namespace
}  // namespace tunnel::relay
