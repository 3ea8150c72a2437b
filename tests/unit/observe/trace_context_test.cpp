#include "observe/trace_context.hpp"

#include <set>
#include <string>

#include <gtest/gtest.h>

namespace tunnel::observe {
namespace {

constexpr const char* valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(Traceparent, ParsesAValidVersion00Value) {
    auto p = parse_traceparent(valid);
    ASSERT_TRUE(p);
    EXPECT_EQ(to_hex(p->trace), "4bf92f3577b34da6a3ce929d0e0e4736");
    EXPECT_EQ(to_hex(p->parent), "00f067aa0ba902b7");
    EXPECT_TRUE(p->sampled());
    EXPECT_EQ(format_traceparent(p->trace, p->parent, p->flags), valid);

    auto unsampled = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
    ASSERT_TRUE(unsampled);
    EXPECT_FALSE(unsampled->sampled());
}

TEST(Traceparent, RefusesAllZeroIds) {
    EXPECT_FALSE(parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
    EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));
}

TEST(Traceparent, RefusesWrongVersions) {
    // ff is forbidden; a version must be two lower-case hex digits.
    EXPECT_FALSE(parse_traceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    EXPECT_FALSE(parse_traceparent("0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    EXPECT_FALSE(parse_traceparent("0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    EXPECT_FALSE(parse_traceparent("-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
}

TEST(Traceparent, ReadsALaterVersionsKnownFieldsAsTheSpecSays) {
    // A version above 00 may carry more fields after a '-': the 00 ones are read.
    auto p = parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra");
    ASSERT_TRUE(p);
    EXPECT_EQ(to_hex(p->trace), "4bf92f3577b34da6a3ce929d0e0e4736");
    EXPECT_TRUE(parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    // ... but only after a '-'.
    EXPECT_FALSE(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"));
}

TEST(Traceparent, RefusesMalformedValues) {
    const std::string v = valid;
    EXPECT_FALSE(parse_traceparent(""));
    EXPECT_FALSE(parse_traceparent(v.substr(0, 54)));  // short
    EXPECT_FALSE(parse_traceparent(v + "-00"));        // version 00 is exactly 55
    EXPECT_FALSE(parse_traceparent(v + " "));
    EXPECT_FALSE(parse_traceparent(" " + v.substr(1)));
    // Upper-case hex is invalid (W3C: lower case only).
    EXPECT_FALSE(parse_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
    EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01"));
    // Separators in their places.
    EXPECT_FALSE(parse_traceparent("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01"));
    EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e473600f067aa0ba902b7--01"));
    // Non-hex digits anywhere.
    EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01"));
    EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01"));
    EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x"));
    // Oversized: a huge value is refused without being read.
    EXPECT_FALSE(parse_traceparent(v + std::string(100000, 'a')));
}

TEST(Traceparent, PassesOnOnlyTheSampledFlag) {
    auto p = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->flags, 1);
}

TEST(Tracestate, IsPassedOnWhenBoundedAndPrintable) {
    EXPECT_EQ(tracestate_to_pass(" congo=t61rcWkgMzE,rojo=00f067aa0ba902b7 "),
              "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
    EXPECT_EQ(tracestate_to_pass(std::string(max_tracestate_bytes, 'a')),
              std::string(max_tracestate_bytes, 'a'));
    EXPECT_FALSE(tracestate_to_pass(std::string(max_tracestate_bytes + 1, 'a')));
    EXPECT_FALSE(tracestate_to_pass("a=b\r\nX-Injected: 1"));
    EXPECT_FALSE(tracestate_to_pass(std::string("a=\x80")));
    EXPECT_FALSE(tracestate_to_pass("   "));
}

TEST(TraceIds, AreRandomAndNeverZero) {
    std::set<std::string> traces;
    std::set<std::string> spans;
    for (int i = 0; i < 1000; ++i) {
        const auto t = new_trace_id();
        const auto s = new_span_id();
        EXPECT_FALSE(is_zero(t));
        EXPECT_FALSE(is_zero(s));
        traces.insert(to_hex(t));
        spans.insert(to_hex(s));
    }
    EXPECT_EQ(traces.size(), 1000u);
    EXPECT_EQ(spans.size(), 1000u);
    const auto formatted = format_traceparent(new_trace_id(), new_span_id(), 1);
    EXPECT_TRUE(parse_traceparent(formatted)) << formatted;
    double lo = 1, hi = 0;
    for (int i = 0; i < 1000; ++i) {
        const double u = random_unit();
        ASSERT_GE(u, 0.0);
        ASSERT_LT(u, 1.0);
        lo = std::min(lo, u);
        hi = std::max(hi, u);
    }
    EXPECT_LT(lo, 0.1);
    EXPECT_GT(hi, 0.9);
}

}  // namespace
}  // namespace tunnel::observe
