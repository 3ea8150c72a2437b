#include "core/duration.hpp"

#include <gtest/gtest.h>

#include <limits>

namespace tunnel::core {
namespace {

using namespace std::chrono_literals;

std::chrono::milliseconds parse_ok(std::string_view text) {
    auto parsed = parse_duration(text);
    EXPECT_TRUE(parsed.has_value()) << text << ": " << parsed.error().message;
    return parsed.value_or(-1ms);
}

std::string parse_error(std::string_view text) {
    auto parsed = parse_duration(text);
    EXPECT_FALSE(parsed.has_value()) << text << " parsed as " << parsed->count() << "ms";
    if (parsed) return {};
    EXPECT_EQ(parsed.error().code, errc::invalid_argument);
    return parsed.error().message;
}

TEST(Duration, ParsesEachUnit) {
    EXPECT_EQ(parse_ok("500ms"), 500ms);
    EXPECT_EQ(parse_ok("30s"), 30s);
    EXPECT_EQ(parse_ok("5m"), 5min);
    EXPECT_EQ(parse_ok("1h"), 1h);
    EXPECT_EQ(parse_ok("0s"), 0ms);
    EXPECT_EQ(parse_ok("0ms"), 0ms);
    EXPECT_EQ(parse_ok("007s"), 7s);
}

TEST(Duration, ParsesCompoundsLargestUnitFirst) {
    EXPECT_EQ(parse_ok("1h30m"), 90min);
    EXPECT_EQ(parse_ok("2m3s"), 123s);
    EXPECT_EQ(parse_ok("1h2m3s4ms"), 1h + 2min + 3s + 4ms);
    EXPECT_EQ(parse_ok("1h5s"), 3605s);
}

TEST(Duration, ParsesFractions) {
    EXPECT_EQ(parse_ok("1.5s"), 1500ms);
    EXPECT_EQ(parse_ok(".5s"), 500ms);
    EXPECT_EQ(parse_ok("5.s"), 5s);
    EXPECT_EQ(parse_ok("0.5h"), 30min);
    EXPECT_EQ(parse_ok("1.234s"), 1234ms);
    EXPECT_EQ(parse_ok("1.0000000000000000000000s"), 1s);
    EXPECT_EQ(parse_ok("0.001s"), 1ms);
    EXPECT_EQ(parse_ok("2m0.5s"), 120500ms);
    EXPECT_EQ(parse_ok("0.0001h"), 360ms);
}

TEST(Duration, BareNumberMeansSeconds) {
    EXPECT_EQ(parse_ok("30"), 30s);
    EXPECT_EQ(parse_ok("0"), 0ms);
    EXPECT_EQ(parse_ok("0.25"), 250ms);
}

TEST(Duration, RejectsEmpty) {
    EXPECT_EQ(parse_error(""),
              "invalid duration \"\": empty; use a number with a unit, e.g. 500ms, 30s, 5m, 1h");
}

TEST(Duration, RejectsUnknownUnitWithHint) {
    EXPECT_EQ(parse_error("5x"),
              "invalid duration \"5x\": unknown unit \"x\"; use a number with a unit, e.g. "
              "500ms, 30s, 5m, 1h");
    EXPECT_NE(parse_error("5d").find("unknown unit \"d\""), std::string::npos);
    EXPECT_NE(parse_error("5sec").find("unknown unit \"sec\""), std::string::npos);
    EXPECT_NE(parse_error("5\xce\xbcs").find("unknown unit \"\\xce\\xbcs\""), std::string::npos);
    EXPECT_NE(parse_error("5 s").find("unknown unit"), std::string::npos);
    EXPECT_NE(parse_error("1h30").find("missing unit"), std::string::npos);
}

TEST(Duration, RejectsNegative) {
    EXPECT_NE(parse_error("-5s").find("negative"), std::string::npos);
    EXPECT_NE(parse_error("-0").find("negative"), std::string::npos);
}

TEST(Duration, RejectsMalformedNumbers) {
    parse_error("s");
    parse_error("ms");
    parse_error(".");
    parse_error(".s");
    parse_error("+5s");
    EXPECT_NE(parse_error("1..5s").find("unexpected \".5s\""), std::string::npos);
    parse_error("1.5.5s");
    parse_error(" 5s");
}

TEST(Duration, RejectsTrailingJunk) {
    EXPECT_NE(parse_error("30s ").find("unexpected \" \""), std::string::npos);
    parse_error("30s,");
    parse_error("30s\n");
    parse_error("1h-30m");
}

TEST(Duration, RejectsUnitsOutOfOrderOrRepeated) {
    EXPECT_NE(parse_error("30m1h").find("largest to smallest"), std::string::npos);
    parse_error("5m5m");
    parse_error("1s1m");
}

TEST(Duration, RejectsSubMillisecondPrecision) {
    EXPECT_NE(parse_error("1.5ms").find("finer than a millisecond"), std::string::npos);
    parse_error("0.0001s");
    parse_error("1.00000001h");
    parse_error("0.0000001h");
}

TEST(Duration, RejectsOverflow) {
    const auto max = std::numeric_limits<std::chrono::milliseconds::rep>::max();
    EXPECT_EQ(parse_ok(std::to_string(max) + "ms").count(), max);
    const std::string too_big = parse_error("9223372036854775808ms");
    EXPECT_NE(too_big.find("too large"), std::string::npos);
    EXPECT_EQ(too_big.find("use a number"), std::string::npos);
    parse_error("99999999999999999999999999s");
    parse_error("9223372036854776s");  // fits as a number, not as milliseconds
    parse_error("2562047788016h");     // ditto, in hours
    EXPECT_TRUE(parse_duration("2562047788015h12m").has_value());
    parse_error("2562047788015h13m");  // each term fits, the sum does not
}

TEST(Duration, ErrorMessageIsOneLine) {
    const std::string message = parse_error("5\nx");
    EXPECT_EQ(message.find('\n'), std::string::npos);
    EXPECT_NE(message.find("\\x0a"), std::string::npos);
}

TEST(Duration, FormatsShortestForm) {
    EXPECT_EQ(format_duration(0ms), "0s");
    EXPECT_EQ(format_duration(1ms), "1ms");
    EXPECT_EQ(format_duration(250ms), "250ms");
    EXPECT_EQ(format_duration(999ms), "999ms");
    EXPECT_EQ(format_duration(1000ms), "1s");
    EXPECT_EQ(format_duration(1234ms), "1.234s");
    EXPECT_EQ(format_duration(1500ms), "1.5s");
    EXPECT_EQ(format_duration(1050ms), "1.05s");
    EXPECT_EQ(format_duration(1001ms), "1.001s");
    EXPECT_EQ(format_duration(30s), "30s");
    EXPECT_EQ(format_duration(60s), "1m");
    EXPECT_EQ(format_duration(123s), "2m3s");
    EXPECT_EQ(format_duration(120500ms), "2m0.5s");
    EXPECT_EQ(format_duration(90min), "1h30m");
    EXPECT_EQ(format_duration(3605s), "1h5s");
    EXPECT_EQ(format_duration(49h), "49h");
    EXPECT_EQ(format_duration(-1500ms), "-1.5s");
    EXPECT_EQ(format_duration(std::chrono::milliseconds::min()), "-2562047788015h12m55.808s");
}

TEST(Duration, FormatRoundTripsThroughParse) {
    const std::chrono::milliseconds samples[] = {0ms,
                                                 1ms,
                                                 10ms,
                                                 999ms,
                                                 1s,
                                                 1001ms,
                                                 59999ms,
                                                 60s,
                                                 61s,
                                                 3599999ms,
                                                 1h,
                                                 1h + 1ms,
                                                 90min,
                                                 26h + 3min + 4s + 5ms,
                                                 std::chrono::milliseconds::max()};
    for (auto sample : samples) {
        const std::string text = format_duration(sample);
        EXPECT_EQ(parse_ok(text), sample) << text;
    }
}

}  // namespace
}  // namespace tunnel::core
