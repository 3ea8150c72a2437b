// GET /api/v1/usage's parameters and report (usage/usage_report.hpp): every
// hostile parameter refused with how to fix it; JSON and CSV shapes; the
// forecast only with enough history, and always with its error.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <sstream>

#include <nlohmann/json.hpp>

#include "temp_db.hpp"
#include "usage/usage_config.hpp"
#include "usage/usage_report.hpp"
#include "usage/usage_store.hpp"

namespace tunnel::usage {
namespace {

using test::temp_db;

constexpr std::int64_t now = 1'765'065'600 + 1800;  // 2025-12-07T00:30:00Z

TEST(UsageTime, ReadsUnixSecondsAndIso8601) {
    EXPECT_EQ(*parse_time("1765065600"), 1765065600);
    EXPECT_EQ(*parse_time("2025-12-07"), 1765065600);
    EXPECT_EQ(*parse_time("2025-12-07T00:00Z"), 1765065600);
    EXPECT_EQ(*parse_time("2025-12-07T01:02:03Z"), 1765065600 + 3723);
    EXPECT_EQ(*parse_time("2025-12-07T01:00:00+01:00"), 1765065600);
    EXPECT_EQ(*parse_time("2025-12-06T23:00:00-01:00"), 1765065600);
    EXPECT_EQ(*parse_time("2024-02-29"), 1709164800);
    for (const char* bad : {"", "-5", "2025-13-01", "2025-02-29", "2025-12-07T10:00",
                            "2025-12-07T25:00Z", "2025-12-07 10:00Z", "yesterday", "999999999999",
                            "2025-12-07T10:00Zjunk", "1969-12-31"}) {
        auto t = parse_time(bad);
        ASSERT_FALSE(t) << bad;
        EXPECT_NE(t.error().message.find("unix seconds"), std::string::npos) << t.error().message;
    }
}

TEST(UsageQuery, DefaultsToTheLast24HoursAsJson) {
    auto q = parse_usage_query("", now);
    ASSERT_TRUE(q);
    EXPECT_EQ(q->to, now);
    EXPECT_EQ(q->from, now - 86400);
    EXPECT_EQ(q->format, report_format::json);
    EXPECT_TRUE(q->tenant.empty());
    q = parse_usage_query("tenant=acme&from=2025-12-01T00%3A00%3A00Z&to=1765065600&format=csv",
                          now);
    ASSERT_TRUE(q) << q.error().message;
    EXPECT_EQ(q->tenant, "acme");
    EXPECT_EQ(q->from, 1764547200);
    EXPECT_EQ(q->format, report_format::csv);
}

TEST(UsageQuery, HostileParametersAreRefusedWithHowToFixThem) {
    const std::pair<const char*, const char*> cases[] = {
        {"format=xml", "format=json or format=csv"},
        {"tenant=ACME", "a-z, 0-9"},
        {"tenant=a--b", "a-z, 0-9"},
        {"tenant=%27%3B%20DROP%20TABLE%20usage_hourly%3B--", "a-z, 0-9"},
        {"tenant=acme&tenant=bob", "given twice"},
        {"limit=5", "use tenant, from, to and format"},
        {"from=1765065600&to=1765065600", "must be before"},
        {"from=2025-12-07T00:00:00Z&to=2025-12-01T00:00:00Z", "must be before"},
        {"from=0&to=1765065600", "over 93 days"},
        {"from=soon", "unix seconds"},
        {"to=2025-12-07T10:00", "add Z for UTC"},
        {"tenant=%zz", "percent-escape"},
        {"tenant=%4", "percent-escape"},
    };
    for (const auto& [query, hint] : cases) {
        auto q = parse_usage_query(query, now);
        ASSERT_FALSE(q) << query;
        EXPECT_EQ(q.error().code, core::errc::invalid_argument);
        EXPECT_NE(q.error().message.find(hint), std::string::npos)
            << query << ": " << q.error().message;
    }
    EXPECT_FALSE(parse_usage_query(std::string(2000, 'a'), now));
}

// `hours` hours of requests for acme/llm ending at the hour before `now`,
// `per_hour(i)` requests in hour i.
template <class Fn>
void seed(usage_store& store, int hours, Fn per_hour) {
    usage_batch b;
    const std::int64_t end = hour_of(now);
    for (int i = 0; i < hours; ++i) {
        auto& c = b[{"acme", "llm", end - (hours - i) * seconds_per_hour}];
        c.requests = per_hour(i);
        c.bytes_in = c.requests * 10;
        c.bytes_out = c.requests * 100;
        c.errors = c.requests / 10;
        c.tunnel_ms = 3'600'000;
        c.latency[latency_bucket(std::chrono::milliseconds(20))] = c.requests;
    }
    ASSERT_TRUE(store.add(b));
}

TEST(UsageReport, JsonHasRowsTotalsAndAForecastWithItsError) {
    temp_db tmp;
    auto store = usage_store::open(tmp.path());
    ASSERT_TRUE(store);
    seed(*store, 24 * 7, [](int i) { return 100 + i; });
    usage_batch bob;
    bob[{"bob", "web", hour_of(now) - 3600}] = usage_counts{5, 1, 2, 0, 1000, {}};
    ASSERT_TRUE(store->add(bob));

    auto q = parse_usage_query("from=" + std::to_string(now - 3 * 3600), now);
    ASSERT_TRUE(q);
    const auto answer = usage_report(*store, *q, now);
    ASSERT_EQ(answer.status, 200) << answer.body;
    EXPECT_EQ(answer.content_type, "application/json");
    const auto j = nlohmann::json::parse(answer.body);
    // Hours from hour_of(from): 3 of acme (the last three), 1 of bob.
    ASSERT_EQ(j["rows"].size(), 4u);
    EXPECT_EQ(j["rows"][0]["tenant"], "acme");
    EXPECT_EQ(j["rows"][0]["requests"], 100 + 165);
    EXPECT_EQ(j["rows"][0]["tunnel_hours"], 1.0);
    ASSERT_EQ(j["totals"].size(), 2u);
    EXPECT_EQ(j["totals"][0]["requests"], 265 + 266 + 267);
    EXPECT_EQ(j["totals"][0]["bytes_out"], (265 + 266 + 267) * 100);
    EXPECT_EQ(j["totals"][0]["errors"], 26 + 26 + 26);
    const double p95 = j["totals"][0]["p95_ms"];
    EXPECT_GE(20.0, j["totals"][0]["p95_range_ms"][0].get<double>());
    EXPECT_LE(20.0, j["totals"][0]["p95_range_ms"][1].get<double>());
    EXPECT_NEAR(p95, 20.0, 4.0);
    EXPECT_TRUE(j["totals"][1]["p95_ms"].is_null());  // bob: no latency recorded
    EXPECT_EQ(j["total"]["requests"], 265 + 266 + 267 + 5);

    ASSERT_EQ(j["forecasts"].size(), 2u);
    const auto& acme = j["forecasts"][0];
    EXPECT_EQ(acme["tenant"], "acme");
    EXPECT_EQ(acme["status"], "ok");
    EXPECT_EQ(acme["history_hours"], 168);
    // 100 + i per hour: next week's hours are 268 .. 435.
    const double truth = 168.0 * (268 + 435) / 2;
    EXPECT_NEAR(acme["requests_next_7d"].get<double>(), truth, 0.01 * truth);
    ASSERT_TRUE(acme.contains("plus_minus"));
    ASSERT_TRUE(acme.contains("error_metric"));
    EXPECT_EQ(acme["backtest"]["holdout_hours"], 42);
    EXPECT_TRUE(acme["backtest"]["mae_per_hour"].is_number());
    const auto& b = j["forecasts"][1];
    EXPECT_EQ(b["tenant"], "bob");
    EXPECT_EQ(b["status"], "insufficient history");
    EXPECT_FALSE(b.contains("requests_next_7d"));
    EXPECT_FALSE(b.contains("plus_minus"));
}

TEST(UsageReport, CsvHasAHeaderHourlyRowsAndTotals) {
    temp_db tmp;
    auto store = usage_store::open(tmp.path());
    ASSERT_TRUE(store);
    seed(*store, 5, [](int) { return 10; });
    auto q = parse_usage_query("format=csv&tenant=acme", now);
    ASSERT_TRUE(q);
    const auto answer = usage_report(*store, *q, now);
    ASSERT_EQ(answer.status, 200);
    EXPECT_EQ(answer.content_type, "text/csv; charset=utf-8");
    std::istringstream in(answer.body);
    std::string line;
    std::vector<std::string> lines;
    while (std::getline(in, line)) {
        ASSERT_FALSE(line.empty());
        ASSERT_EQ(line.back(), '\r');
        line.pop_back();
        EXPECT_EQ(std::count(line.begin(), line.end(), ','), 8) << line;
        lines.push_back(line);
    }
    ASSERT_EQ(lines.size(), 1u + 5 + 1);
    EXPECT_EQ(lines[0], "hour,tenant,name,requests,bytes_in,bytes_out,tunnel_hours,errors,p95_ms");
    EXPECT_EQ(lines[1].substr(0, 30), "2025-12-06T19:00:00Z,acme,llm,");
    EXPECT_EQ(lines[6].substr(0, 27), "total,acme,llm,50,500,5000,");
}

TEST(UsageReport, TooManyRowsIsA400ThatSaysHowToNarrow) {
    temp_db tmp;
    auto store = usage_store::open(tmp.path());
    ASSERT_TRUE(store);
    usage_batch b;
    for (int name = 0; name < 10; ++name)
        for (int h = 0; h < 2001; ++h)
            b[{"acme", "n" + std::to_string(name), hour_of(now) - h * 3600}].requests = 1;
    ASSERT_TRUE(store->add(b));
    auto q = parse_usage_query("from=" + std::to_string(now - 90 * 86400), now);
    ASSERT_TRUE(q);
    const auto answer = usage_report(*store, *q, now);
    EXPECT_EQ(answer.status, 400);
    EXPECT_NE(answer.body.find("narrow"), std::string::npos) << answer.body;
}

TEST(UsageConfig, RetentionIsDaysOrWholeHours) {
    EXPECT_EQ(parse_retention("90d")->count(), 90 * 24);
    EXPECT_EQ(parse_retention("36h")->count(), 36);
    for (const char* bad : {"", "0d", "12h", "1.5d", "90x", "90m", "99999d"}) {
        auto r = parse_retention(bad);
        ASSERT_FALSE(r) << bad;
        EXPECT_NE(r.error().message.find("e.g. 90d"), std::string::npos) << r.error().message;
    }
}

}  // namespace
}  // namespace tunnel::usage
