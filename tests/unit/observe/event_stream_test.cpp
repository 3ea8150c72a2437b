// observe::event_stream: SSE framing, the subscriber cap, and a subscriber
// that falls behind being dropped instead of buffering without limit.
#include "observe/event_stream.hpp"

#include <thread>

#include <gtest/gtest.h>

namespace tunnel::observe {
namespace {

using namespace std::chrono_literals;

// Runs next() once on `io` (one thread, as the admin server; one io_context
// per subscriber: its timer lives there).
std::optional<std::string> next_of(asio::io_context& io, event_subscriber& s,
                                   std::chrono::milliseconds keepalive) {
    io.restart();
    std::optional<std::string> got;
    bool done = false;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            got = co_await s.next(keepalive);
            done = true;
        },
        [](std::exception_ptr e) {
            if (e) std::rethrow_exception(e);
        });
    io.run_for(5s);
    EXPECT_TRUE(done);
    return got;
}

TEST(EventStreamFormat, OneDataLinePerLineAndABlankLineAfter) {
    EXPECT_EQ(format_event("snapshot", "{\"a\":1}"), "event: snapshot\ndata: {\"a\":1}\n\n");
    EXPECT_EQ(format_event("", "x"), "data: x\n\n");
    EXPECT_EQ(format_event("e", "a\nb\r\nc\rd"),
              "event: e\ndata: a\ndata: b\ndata: c\ndata: d\n\n");
    EXPECT_EQ(format_event("e", "a\n"), "event: e\ndata: a\n\n");
    EXPECT_EQ(format_event("e", ""), "event: e\ndata: \n\n");
    // A name cannot smuggle a second field.
    EXPECT_EQ(format_event("e\ndata: evil", "x"), "event: e\ndata: x\n\n");
}

TEST(EventStream, SubscribersAreCappedAndSlotsComeBack) {
    auto events = std::make_shared<event_stream>(event_stream_options{2, 4096});
    auto a = events->subscribe();
    auto b = events->subscribe();
    ASSERT_TRUE(a && b);
    EXPECT_EQ(events->subscribe(), nullptr);
    EXPECT_EQ(events->refused_total(), 1u);
    EXPECT_EQ(events->subscribers(), 2u);
    a.reset();
    EXPECT_EQ(events->subscribers(), 1u);
    EXPECT_NE(events->subscribe(), nullptr);
}

TEST(EventStream, QueuedEventsComeOutInOrder) {
    auto events = std::make_shared<event_stream>(event_stream_options{4, 4096});
    asio::io_context io;  // outlives the subscriber's timer
    auto s = events->subscribe();
    ASSERT_TRUE(s);
    events->publish("one", "1");
    events->publish("two", "2");
    EXPECT_EQ(next_of(io, *s, 1s), "event: one\ndata: 1\n\nevent: two\ndata: 2\n\n");
    // Nothing queued: a keepalive comment after the keepalive interval.
    EXPECT_EQ(next_of(io, *s, 20ms), ": keepalive\n\n");
}

TEST(EventStream, ASubscriberThatFallsBehindIsDroppedAndItsQueueFreed) {
    auto events = std::make_shared<event_stream>(event_stream_options{4, 4096});
    asio::io_context slow_io, fast_io;
    auto slow = events->subscribe();
    auto fast = events->subscribe();
    ASSERT_TRUE(slow && fast);
    const std::string data(1100, 'x');  // ~1118 bytes an event: 3 fit in 4096, 4 do not
    for (int i = 0; i < 3; ++i) events->publish("e", data);
    ASSERT_TRUE(next_of(fast_io, *fast, 1s).has_value());  // fast keeps up
    events->publish("e", data);                            // slow: 4 events > 4096 bytes
    EXPECT_TRUE(slow->dropped());
    EXPECT_FALSE(fast->dropped());
    EXPECT_EQ(events->dropped_total(), 1u);
    EXPECT_EQ(next_of(slow_io, *slow, 1s), std::nullopt);
    auto more = next_of(fast_io, *fast, 1s);
    ASSERT_TRUE(more);
    EXPECT_NE(more->find(data), std::string::npos);
}

TEST(EventStream, PublishFromAnotherThreadWakesAWaitingReader) {
    auto events = std::make_shared<event_stream>(event_stream_options{4, 4096});
    asio::io_context io;
    auto s = events->subscribe();
    ASSERT_TRUE(s);
    std::thread publisher([&] {
        std::this_thread::sleep_for(100ms);
        events->publish("e", "x");
    });
    const auto t0 = std::chrono::steady_clock::now();
    auto got = next_of(io, *s, 10s);
    publisher.join();
    EXPECT_EQ(got, "event: e\ndata: x\n\n");
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST(EventStream, CloseAllEndsEveryReader) {
    auto events = std::make_shared<event_stream>(event_stream_options{4, 4096});
    asio::io_context io;
    auto s = events->subscribe();
    ASSERT_TRUE(s);
    events->close_all();
    EXPECT_EQ(next_of(io, *s, 10s), std::nullopt);
}

}  // namespace
}  // namespace tunnel::observe
