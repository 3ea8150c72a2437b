#include "health/thresholds.hpp"

#include <gtest/gtest.h>

namespace tunnel::health {
namespace {

TEST(HealthThresholds, EmptyFileKeepsTheDefaults) {
    auto t = parse_thresholds("", "t.yml");
    ASSERT_TRUE(t) << t.error().message;
    EXPECT_DOUBLE_EQ(t->load_per_cpu, 2.0);
    EXPECT_DOUBLE_EQ(t->memory_available_min, 10.0);
    EXPECT_DOUBLE_EQ(t->disk_used_max, 90.0);
    EXPECT_EQ(t->failed_units_max, 0u);
    EXPECT_EQ(t->clock_skew_max, std::chrono::seconds(1));
}

TEST(HealthThresholds, EveryKeyOverrides) {
    auto t = parse_thresholds(
        "load_per_cpu: 0.5\nmemory_available_min: 25\ndisk_used_max: 0\nfailed_units_max: 3\n"
        "clock_skew_max: 250ms\n",
        "t.yml");
    ASSERT_TRUE(t) << t.error().message;
    EXPECT_DOUBLE_EQ(t->load_per_cpu, 0.5);
    EXPECT_DOUBLE_EQ(t->memory_available_min, 25.0);
    EXPECT_DOUBLE_EQ(t->disk_used_max, 0.0);
    EXPECT_EQ(t->failed_units_max, 3u);
    EXPECT_EQ(t->clock_skew_max, std::chrono::milliseconds(250));
}

TEST(HealthThresholds, ErrorsNameFileKeyAndLine) {
    struct bad {
        std::string text, says;
    };
    for (const auto& b : std::vector<bad>{
             {"load_per_cpu: 1\ndisk_usedmax: 80\n", "t.yml: disk_usedmax: unknown key (line 2)"},
             {"disk_used_max: 120\n",
              "t.yml: disk_used_max: must be a percentage from 0 to 100 (line 1)"},
             {"\nmemory_available_min: -1\n",
              "memory_available_min: must be a percentage from 0 to 100 (line 2)"},
             {"load_per_cpu: 0\n", "load_per_cpu: must be a number > 0"},
             {"load_per_cpu: .nan\n", "load_per_cpu"},
             {"failed_units_max: 1.5\n", "failed_units_max: must be a whole number"},
             {"clock_skew_max: 0s\n", "clock_skew_max: must be more than 0"},
             {"clock_skew_max: soon\n", "clock_skew_max"},
             {"- a\n- b\n", "must be a mapping"},
             {"load_per_cpu: [1\n", "t.yml:"},
         }) {
        auto t = parse_thresholds(b.text, "t.yml");
        ASSERT_FALSE(t) << b.text;
        EXPECT_NE(t.error().message.find(b.says), std::string::npos)
            << b.text << " -> " << t.error().message;
        EXPECT_EQ(t.error().code, core::errc::invalid_argument);
    }
    // Every problem at once.
    auto two = parse_thresholds("disk_used_max: 101\nload_per_cpu: -1\n", "t.yml");
    ASSERT_FALSE(two);
    EXPECT_NE(two.error().message.find("disk_used_max"), std::string::npos);
    EXPECT_NE(two.error().message.find("load_per_cpu"), std::string::npos);
}

TEST(HealthThresholds, MissingFileSaysSo) {
    auto t = load_thresholds("/nonexistent/health.yml");
    ASSERT_FALSE(t);
    EXPECT_NE(t.error().message.find("/nonexistent/health.yml"), std::string::npos);
}

}  // namespace
}  // namespace tunnel::health
