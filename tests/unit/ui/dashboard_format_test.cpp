// The text pieces of `tunnel ui`: sparklines, numbers, predictions, event
// lines, and fitting into columns.
#include "ui/dashboard_format.hpp"

#include <gtest/gtest.h>

namespace tunnel::ui {
namespace {

TEST(DashboardFormat, SparklineScalesFromLowestToHighest) {
    EXPECT_EQ(sparkline({1, 2, 3, 4, 5, 6, 7, 8}, 8, true), "▁▂▃▄▅▆▇█");
    EXPECT_EQ(sparkline({1, 2, 3, 4, 5, 6, 7, 8}, 8, false), "_.-:=+*#");
    EXPECT_EQ(sparkline({10, 80, 10}, 10, false), "_#_");
    // A flat series is all low bars, not noise.
    EXPECT_EQ(sparkline({5, 5, 5}, 10, true), "▁▁▁");
    EXPECT_EQ(sparkline({}, 10, true), "");
    EXPECT_EQ(sparkline({1, 2}, 0, true), "");
}

TEST(DashboardFormat, SparklineKeepsTheLastSamplesThatFit) {
    // The last three of 100, 1, 2, 3: scaled among themselves.
    EXPECT_EQ(sparkline({100, 1, 2, 3}, 3, false), "_=#");
    EXPECT_EQ(columns(sparkline(std::vector<double>(50, 1.0), 20, true)), 20u);
}

TEST(DashboardFormat, FitCutsAndPadsByColumns) {
    EXPECT_EQ(fit("abc", 5), "abc");
    EXPECT_EQ(fit("abc", 5, true), "abc  ");
    EXPECT_EQ(fit("abcdef", 4), "abc~");
    EXPECT_EQ(fit("abcdef", 0), "");
    EXPECT_EQ(fit("abcdef", 1), "~");
    // Multibyte bars count as one column each and are never cut in half.
    const auto bars = sparkline({1, 2, 3, 4, 5, 6, 7, 8}, 8, true);
    EXPECT_EQ(columns(fit(bars, 4)), 4u);
    EXPECT_EQ(fit(bars, 4), "▁▂▃~");
    EXPECT_EQ(columns(fit("x±y", 3, true)), 3u);
}

TEST(DashboardFormat, SanitizeKeepsPrintableAscii) {
    EXPECT_EQ(sanitize("ok \x1b[31mred\n"), "ok ?[31mred?");
    EXPECT_EQ(sanitize("abcdef", 3), "abc");
}

TEST(DashboardFormat, Numbers) {
    EXPECT_EQ(format_rtt(std::nullopt), "-");
    EXPECT_EQ(format_rtt(0.421), "0.42ms");
    EXPECT_EQ(format_rtt(12.34), "12.3ms");
    EXPECT_EQ(format_rtt(1250), "1.25s");
    EXPECT_EQ(format_rate(std::nullopt), "-");
    EXPECT_EQ(format_rate(0), "0B/s");
    EXPECT_EQ(format_rate(512), "512B/s");
    EXPECT_EQ(format_rate(1536), "1.5K/s");
    EXPECT_EQ(format_rate(2.0 * 1024 * 1024), "2.0M/s");
    EXPECT_EQ(format_seconds(12.4), "12s");
    EXPECT_EQ(format_seconds(300), "5m");
    EXPECT_EQ(format_seconds(3 * 3600), "3h");
}

TEST(DashboardFormat, PredictionReadsAsTimeToFailureOrStable) {
    EXPECT_EQ(format_prediction(std::nullopt, true), "stable");
    EXPECT_EQ(format_prediction(prediction{12.2, 3.4}, true), "fails in ~12s ± 3s");
    EXPECT_EQ(format_prediction(prediction{12.2, 3.4}, true, false), "fails in ~12s +- 3s");
    EXPECT_EQ(format_prediction(prediction{0, 0}, true), "failing now");
    EXPECT_EQ(format_prediction(prediction{12, 3}, false), "-");
    EXPECT_EQ(format_prediction(std::nullopt, false), "-");
}

TEST(DashboardFormat, ScoreClasses) {
    EXPECT_EQ(classify_score(std::nullopt), score_class::none);
    EXPECT_EQ(classify_score(100), score_class::good);
    EXPECT_EQ(classify_score(70), score_class::good);
    EXPECT_EQ(classify_score(69), score_class::fair);
    EXPECT_EQ(classify_score(40), score_class::fair);
    EXPECT_EQ(classify_score(39), score_class::poor);
}

TEST(DashboardFormat, EventLines) {
    EXPECT_EQ(describe_event({{"type", "switch"},
                              {"link", "db"},
                              {"from", 0},
                              {"to", 1},
                              {"transport", "tcp"},
                              {"reason", "tunnel switch"},
                              {"seq", 7},
                              {"time_ms", 1}}),
              "switch to tcp#1 from #0: tunnel switch");
    EXPECT_EQ(describe_event({{"type", "switch"}, {"from", 0}, {"to", nullptr}, {"reason", "x"}}),
              "switch to none from #0: x");
    EXPECT_EQ(
        describe_event({{"type", "preferred"}, {"transport", {{"index", 1}, {"name", "tcp"}}}}),
        "preferred tcp#1");
    EXPECT_EQ(describe_event({{"type", "transport_down"},
                              {"link", "db"},
                              {"transport", "socat"},
                              {"error", "restart requested"}}),
              "transport_down error=restart requested transport=socat");
    EXPECT_EQ(describe_event({{"type", "restart"}, {"link", "db"}, {"seq", 3}}), "restart");
    // Control characters from the manager never reach the terminal.
    EXPECT_EQ(describe_event({{"type", "connect_failed"}, {"error", "bad\x1b]0;x\x07"}}),
              "connect_failed error=bad?]0;x?");
}

}  // namespace
}  // namespace tunnel::ui
