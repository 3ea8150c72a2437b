// The hourly usage store and the recorder that fills it
// (usage/usage_store.hpp, usage/usage_recorder.hpp) on real SQLite files.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <thread>
#include <vector>

#include "temp_db.hpp"
#include "usage/usage_recorder.hpp"
#include "usage/usage_store.hpp"

namespace tunnel::usage {
namespace {

using namespace std::chrono_literals;
using clock_type = usage_recorder::clock;

using test::temp_db;

std::int64_t now_seconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               usage_recorder::clock::now().time_since_epoch())
        .count();
}
// An hour a day ago: within every retention used here.
const std::int64_t h0 = hour_of(now_seconds()) - 24 * 3600;

clock_type::time_point at(std::int64_t unix_seconds, std::chrono::milliseconds plus = 0ms) {
    return clock_type::time_point(std::chrono::seconds(unix_seconds)) + plus;
}

TEST(UsageStore, AddsMergeIntoTheSameHour) {
    temp_db tmp;
    auto store = usage_store::open(tmp.path());
    ASSERT_TRUE(store) << store.error().message;
    usage_batch a;
    a[{"acme", "llm", h0}] = usage_counts{3, 100, 1000, 1, 5000, {{10, 2}, {20, 1}}};
    ASSERT_TRUE(store->add(a));
    ASSERT_TRUE(store->add(a));
    usage_batch other;
    other[{"acme", "llm", h0 + 3600}] = usage_counts{1, 1, 1, 0, 0, {{10, 1}}};
    other[{"bob", "web", h0}] = usage_counts{7, 7, 7, 0, 0, {}};
    ASSERT_TRUE(store->add(other));

    auto rows = store->rows("acme", h0, h0 + 3600, 100);
    ASSERT_TRUE(rows);
    ASSERT_EQ(rows->size(), 1u);
    const auto& c = (*rows)[0].counts;
    EXPECT_EQ(c.requests, 6u);
    EXPECT_EQ(c.bytes_in, 200u);
    EXPECT_EQ(c.bytes_out, 2000u);
    EXPECT_EQ(c.errors, 2u);
    EXPECT_EQ(c.tunnel_ms, 10000u);
    EXPECT_EQ(c.latency.at(10), 4u);
    EXPECT_EQ(c.latency.at(20), 2u);

    auto everyone = store->rows("", h0, h0 + 7200, 100);
    ASSERT_TRUE(everyone);
    EXPECT_EQ(everyone->size(), 3u);
    // A limit of 2 returns 3 rows: the caller sees there were more.
    EXPECT_EQ(store->rows("", h0, h0 + 7200, 1)->size(), 2u);
    auto series = store->requests_by_hour("acme", h0, h0 + 7200);
    ASSERT_TRUE(series);
    EXPECT_EQ((*series)[h0], 6u);
    EXPECT_EQ((*series)[h0 + 3600], 1u);
}

TEST(UsageStore, PruneDeletesHoursBeforeTheCutoff) {
    temp_db tmp;
    auto store = usage_store::open(tmp.path());
    ASSERT_TRUE(store);
    usage_batch b;
    for (int i = 0; i < 5; ++i)
        b[{"acme", "llm", h0 + i * 3600}] = usage_counts{1, 0, 0, 0, 0, {{1, 1}}};
    ASSERT_TRUE(store->add(b));
    auto n = store->prune(h0 + 2 * 3600);
    ASSERT_TRUE(n);
    EXPECT_EQ(*n, 2u);
    EXPECT_EQ(**store->oldest_hour(), h0 + 2 * 3600);
    EXPECT_EQ(store->rows("", h0, h0 + 5 * 3600, 100)->size(), 3u);
}

TEST(UsageStore, RefusesAFileThatIsNotADatabase) {
    temp_db tmp;
    {
        FILE* f = std::fopen(tmp.path().c_str(), "w");
        ASSERT_TRUE(f);
        std::fputs("this is not sqlite, just text that is long enough to be read\n", f);
        std::fclose(f);
    }
    auto store = usage_store::open(tmp.path());
    ASSERT_FALSE(store);
    EXPECT_NE(store.error().message.find(tmp.path()), std::string::npos) << store.error().message;
}

TEST(UsageRecorder, CountsRequestsFromEveryShardAndFlushesThem) {
    temp_db tmp;
    usage_config cfg{tmp.path(), 1h, std::chrono::hours(24 * 90)};
    auto rec = usage_recorder::open(cfg, 4);
    ASSERT_TRUE(rec) << rec.error().message;
    std::vector<std::thread> threads;
    for (unsigned w = 0; w < 4; ++w)
        threads.emplace_back([&, w] {
            for (int i = 0; i < 1000; ++i)
                (*rec)->record_request(w, "acme", "llm", at(h0 + 10), 10, 100,
                                       i % 100 == 0 ? 502 : 200, 5ms);
        });
    for (auto& t : threads) t.join();
    (*rec)->record_request(0, "acme", "llm", at(h0 + 20), 1, 0, 0, 1s);  // unanswered
    ASSERT_TRUE((*rec)->flush(at(h0 + 30)));
    auto store = usage_store::open(tmp.path());
    auto rows = store->rows("acme", h0, h0 + 3600, 10);
    ASSERT_TRUE(rows);
    ASSERT_EQ(rows->size(), 1u);
    const auto& c = (*rows)[0].counts;
    EXPECT_EQ(c.requests, 4001u);
    EXPECT_EQ(c.bytes_in, 40001u);
    EXPECT_EQ(c.bytes_out, 400000u);
    EXPECT_EQ(c.errors, 40u);
    std::uint64_t answered = 0;
    for (const auto& [b, n] : c.latency) answered += n;
    EXPECT_EQ(answered, 4000u);  // the unanswered request has no latency
    const auto p = percentile(c.latency, 0.95);
    ASSERT_TRUE(p);
    EXPECT_GE(5.0, p->low_ms);
    EXPECT_LE(5.0, p->high_ms);
}

TEST(UsageRecorder, PublishedTimeIsSplitAtHourBoundaries) {
    temp_db tmp;
    auto rec = usage_recorder::open({tmp.path(), 1h, std::chrono::hours(24 * 90)}, 1);
    ASSERT_TRUE(rec);
    // llm: 00:30 .. 02:15, counted over three flushes; web: 00:50 .. 01:10, gone before a flush.
    (*rec)->name_up("acme", "llm", at(h0 + 1800));
    ASSERT_TRUE((*rec)->flush(at(h0 + 2400)));
    (*rec)->name_up("acme", "web", at(h0 + 3000));
    (*rec)->name_down("acme", "web", at(h0 + 4200));
    ASSERT_TRUE((*rec)->flush(at(h0 + 5400)));
    (*rec)->name_down("acme", "llm", at(h0 + 2 * 3600 + 900));
    ASSERT_TRUE((*rec)->flush(at(h0 + 3 * 3600)));
    auto store = usage_store::open(tmp.path());
    auto rows = store->rows("acme", h0, h0 + 4 * 3600, 10);
    ASSERT_TRUE(rows);
    std::map<std::pair<std::string, std::int64_t>, std::uint64_t> ms;
    for (const auto& r : *rows) ms[{r.key.name, r.key.hour}] = r.counts.tunnel_ms;
    EXPECT_EQ((ms[{"llm", h0}]), 1800'000u);
    EXPECT_EQ((ms[{"llm", h0 + 3600}]), 3600'000u);
    EXPECT_EQ((ms[{"llm", h0 + 7200}]), 900'000u);
    EXPECT_EQ((ms[{"web", h0}]), 600'000u);
    EXPECT_EQ((ms[{"web", h0 + 3600}]), 600'000u);
}

TEST(UsageRecorder, StopWritesWhatIsLeftAndFlushPrunesPastTheRetention) {
    temp_db tmp;
    {
        auto rec = usage_recorder::open({tmp.path(), 1h, std::chrono::hours(48)}, 2);
        ASSERT_TRUE(rec);
        (*rec)->record_request(1, "acme", "old", at(h0 - 72 * 3600), 1, 1, 200, 1ms);
        ASSERT_TRUE((*rec)->flush(at(h0 - 71 * 3600)));  // within the retention then
        EXPECT_EQ(usage_store::open(tmp.path())->rows("", h0 - 73 * 3600, h0, 10)->size(), 1u);
        (*rec)->record_request(1, "acme", "new", at(h0), 1, 1, 200, 1ms);
        ASSERT_TRUE((*rec)->flush(at(h0 + 60)));  // "old" is now 72 h back: gone
        (*rec)->record_request(0, "acme", "last", clock_type::now(), 1, 1, 200, 1ms);
        (*rec)->start();
        (*rec)->stop();  // the flusher had an hour to go: stop writes "last" now
    }
    auto store = usage_store::open(tmp.path());
    auto rows = store->rows("", h0 - 73 * 3600, h0 + 3600, 10);
    ASSERT_TRUE(rows);
    ASSERT_EQ(rows->size(), 1u);
    EXPECT_EQ((*rows)[0].key.name, "new");
    const auto now_s = now_seconds();
    auto last = store->rows("acme", now_s - 3600, now_s + 3600, 10);
    ASSERT_TRUE(last);
    ASSERT_EQ(last->size(), 1u);
    EXPECT_EQ((*last)[0].key.name, "last");
}

}  // namespace
}  // namespace tunnel::usage
