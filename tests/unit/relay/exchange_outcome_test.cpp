#include "relay/exchange_outcome.hpp"

#include <gtest/gtest.h>

#include "core/clock.hpp"
#include "pool/circuit_breaker.hpp"

namespace tunnel::relay {
namespace {

using namespace std::chrono_literals;

constexpr exchange_end caller_ends[] = {exchange_end::caller_bad_body,
                                        exchange_end::caller_body_too_large,
                                        exchange_end::caller_stalled, exchange_end::caller_gone};
constexpr exchange_end origin_ends[] = {exchange_end::origin_closed, exchange_end::origin_timeout,
                                        exchange_end::origin_bad_response};

TEST(RelayExchangeOutcome, CallerEndsNeverGiveAVerdict) {
    for (auto end : caller_ends) {
        EXPECT_TRUE(callers_fault(end)) << to_string(end);
        EXPECT_EQ(verdict_of(end, true), breaker_verdict::none) << to_string(end);
        EXPECT_EQ(verdict_of(end, false), breaker_verdict::none) << to_string(end);
    }
}

TEST(RelayExchangeOutcome, OriginEndsCountOnceTheWholeRequestWasSent) {
    for (auto end : origin_ends) {
        EXPECT_FALSE(callers_fault(end)) << to_string(end);
        EXPECT_EQ(verdict_of(end, true), breaker_verdict::failure) << to_string(end);
        // Before that, the origin may only be refusing a body a caller chose.
        EXPECT_EQ(verdict_of(end, false), breaker_verdict::none) << to_string(end);
    }
    EXPECT_EQ(verdict_of(exchange_end::origin_unreachable, false), breaker_verdict::failure);
    EXPECT_EQ(verdict_of(exchange_end::answered, false), breaker_verdict::success);
    EXPECT_EQ(verdict_of(exchange_end::answered, true), breaker_verdict::success);
}

TEST(RelayExchangeOutcome, BodyProblemsAreTheCallers) {
    EXPECT_EQ(end_for_body_problem(http_problem::bad_message), exchange_end::caller_bad_body);
    EXPECT_EQ(end_for_body_problem(http_problem::body_too_large),
              exchange_end::caller_body_too_large);
    // A malformed chunk, as the relay's tracker sees it.
    auto t = http_tracker::for_request(8192, 1 << 20);
    (void)t.feed("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
    (void)t.feed("zz\r\n");
    ASSERT_EQ(t.problem(), http_problem::bad_message);
    EXPECT_EQ(end_for_body_problem(t.problem()), exchange_end::caller_bad_body);
}

TEST(RelayExchangeOutcome, EndWithoutHead) {
    request_progress p;
    // The origin closed on a request it had whole: its fault.
    p.sent = true;
    EXPECT_EQ(end_without_head(false, p), exchange_end::origin_closed);
    EXPECT_EQ(end_without_head(true, p), exchange_end::origin_timeout);
    // The wait ran out while the body was still coming: the caller's stall.
    p.sent = false;
    EXPECT_EQ(end_without_head(true, p), exchange_end::caller_stalled);
    // The caller hung up (the relay then closes the channel itself).
    p.caller_gone = true;
    EXPECT_EQ(end_without_head(false, p), exchange_end::caller_gone);
    EXPECT_EQ(end_without_head(true, p), exchange_end::caller_gone);
    // The body pump saw it first (it closed the channel): its reason wins.
    p.body_end = exchange_end::caller_bad_body;
    EXPECT_EQ(end_without_head(false, p), exchange_end::caller_bad_body);
    p.caller_gone = false;
    p.body_end = exchange_end::caller_stalled;
    EXPECT_EQ(end_without_head(false, p), exchange_end::caller_stalled);
}

TEST(RelayExchangeOutcome, AnswersForEachEnd) {
    const auto idle = 10'000ms;
    EXPECT_EQ(answer_for(exchange_end::caller_gone, "a/b", idle).status, 0);
    EXPECT_EQ(answer_for(exchange_end::answered, "a/b", idle).status, 0);
    auto bad = answer_for(exchange_end::caller_bad_body, "a/b", idle, "bad chunk");
    EXPECT_EQ(bad.status, 400);
    EXPECT_EQ(bad.code, "bad_request");
    EXPECT_EQ(bad.message, "malformed request body: bad chunk");
    auto big = answer_for(exchange_end::caller_body_too_large, "a/b", idle, "1024 bytes");
    EXPECT_EQ(big.status, 413);
    EXPECT_EQ(big.code, "body_too_large");
    EXPECT_EQ(answer_for(exchange_end::caller_stalled, "a/b", idle).status, 408);
    EXPECT_EQ(answer_for(exchange_end::caller_stalled, "a/b", idle).code, "body_timeout");
    EXPECT_EQ(answer_for(exchange_end::origin_unreachable, "a/b", idle, "refused").status, 502);
    EXPECT_EQ(answer_for(exchange_end::origin_closed, "a/b", idle).code, "origin_closed");
    auto slow = answer_for(exchange_end::origin_timeout, "a/b", idle);
    EXPECT_EQ(slow.status, 504);
    EXPECT_NE(slow.message.find("10000 ms"), std::string::npos) << slow.message;
    EXPECT_EQ(answer_for(exchange_end::origin_bad_response, "a/b", idle).code,
              "bad_origin_response");
}

// The breaker accounting of the proxy: a real breaker, a manual clock.
class RelayBreakerAccounting : public ::testing::Test {
  protected:
    core::manual_clock clock_;
    pool::circuit_breaker breaker_{{5, 10s}, clock_};

    // One request: admitted (or not), then ended with `end`.
    bool request(exchange_end end, bool sent = true) {
        const auto attempt = breaker_.begin_attempt();
        if (attempt == pool::breaker_attempt::refused) return false;
        breaker_ticket ticket(breaker_, attempt == pool::breaker_attempt::probe);
        (void)ticket.settle(end, sent);
        return true;
    }
};

TEST_F(RelayBreakerAccounting, TwentyMalformedBodiesLeaveItClosed) {
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(request(exchange_end::caller_bad_body));
    for (auto end : caller_ends)
        for (int i = 0; i < 10; ++i) ASSERT_TRUE(request(end, i % 2 == 0));
    EXPECT_EQ(breaker_.state(), pool::breaker_state::closed);
    EXPECT_EQ(breaker_.consecutive_failures(), 0u);
    EXPECT_TRUE(request(exchange_end::answered));
}

TEST_F(RelayBreakerAccounting, OriginFailuresOpenItAndAnAnswerClosesIt) {
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(request(exchange_end::origin_closed));
    // Caller ends in between neither count nor reset the run.
    ASSERT_TRUE(request(exchange_end::caller_stalled));
    EXPECT_EQ(breaker_.consecutive_failures(), 4u);
    ASSERT_TRUE(request(exchange_end::origin_unreachable));
    EXPECT_EQ(breaker_.state(), pool::breaker_state::open);
    EXPECT_FALSE(request(exchange_end::answered));
    clock_.advance(10s);
    EXPECT_TRUE(request(exchange_end::answered));  // the probe
    EXPECT_EQ(breaker_.state(), pool::breaker_state::closed);
}

TEST_F(RelayBreakerAccounting, AProbeFailedByItsCallerIsGivenBack) {
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(request(exchange_end::origin_timeout));
    clock_.advance(10s);
    // An attacker takes the probe and sends a bad chunk, stalls, or hangs up:
    // no verdict, and the next request probes at once.
    for (auto end : caller_ends) {
        ASSERT_TRUE(request(end)) << to_string(end);
        EXPECT_EQ(breaker_.state(), pool::breaker_state::half_open) << to_string(end);
    }
    // An origin that closes on a body it never got whole says nothing either.
    ASSERT_TRUE(request(exchange_end::origin_closed, false));
    EXPECT_EQ(breaker_.state(), pool::breaker_state::half_open);
    // A real answer closes it.
    EXPECT_TRUE(request(exchange_end::answered));
    EXPECT_EQ(breaker_.state(), pool::breaker_state::closed);
}

TEST_F(RelayBreakerAccounting, AnOriginFailedProbeReopens) {
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(request(exchange_end::origin_closed));
    clock_.advance(10s);
    ASSERT_TRUE(request(exchange_end::origin_timeout));
    EXPECT_EQ(breaker_.state(), pool::breaker_state::open);
    EXPECT_FALSE(request(exchange_end::answered));
}

TEST_F(RelayBreakerAccounting, TicketSettlesOnceAndReleasesAnUnsettledProbe) {
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(request(exchange_end::origin_closed));
    clock_.advance(10s);
    {
        ASSERT_EQ(breaker_.begin_attempt(), pool::breaker_attempt::probe);
        breaker_ticket ticket(breaker_, true);
        EXPECT_EQ(ticket.settle(exchange_end::answered, false), breaker_verdict::success);
        // Later ends of the same request change nothing.
        EXPECT_EQ(ticket.settle(exchange_end::origin_closed, true), breaker_verdict::none);
        EXPECT_TRUE(ticket.ended());
    }
    EXPECT_EQ(breaker_.state(), pool::breaker_state::closed);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(request(exchange_end::origin_closed));
    clock_.advance(10s);
    {
        // A probe whose request was dropped before it ended (an exception, a
        // shutdown) gives the slot back too.
        ASSERT_EQ(breaker_.begin_attempt(), pool::breaker_attempt::probe);
        breaker_ticket ticket(breaker_, true);
    }
    EXPECT_EQ(breaker_.begin_attempt(), pool::breaker_attempt::probe);
}

}  // namespace
}  // namespace tunnel::relay
