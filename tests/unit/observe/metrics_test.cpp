#include "observe/metrics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <thread>
#include <vector>

namespace tunnel::observe {
namespace {

TEST(Metrics, ExpositionTextExactly) {
    metrics_registry r;
    auto& attaches = r.counter("relay_attaches_total", "Tunnel attaches.");
    auto& requests = r.counter("relay_requests_total", "Public requests by tenant and status.",
                               {"tenant", "status"});
    auto& active = r.gauge("relay_active_tunnels", "Tunnels attached now.");
    auto& latency =
        r.histogram("relay_request_seconds", "Request latency.\nIn seconds \\ wall clock.",
                    {"tenant"}, {0.1, 0.5, 1});
    attaches.with({}).inc();
    attaches.with({}).inc(2);
    requests.with({"acme", "200"}).inc();
    requests.with({"acme", "200"}).inc();
    requests.with({"acme", "429"}).inc();
    requests.with({"b\"e\\t\na", "200"}).inc();
    active.with({}).set(3);
    active.with({}).dec();
    latency.with({"acme"}).observe(0.05);
    latency.with({"acme"}).observe(0.5);
    latency.with({"acme"}).observe(7);

    EXPECT_EQ(r.expose(),
              "# HELP relay_attaches_total Tunnel attaches.\n"
              "# TYPE relay_attaches_total counter\n"
              "relay_attaches_total 3\n"
              "# HELP relay_requests_total Public requests by tenant and status.\n"
              "# TYPE relay_requests_total counter\n"
              "relay_requests_total{tenant=\"acme\",status=\"200\"} 2\n"
              "relay_requests_total{tenant=\"acme\",status=\"429\"} 1\n"
              "relay_requests_total{tenant=\"b\\\"e\\\\t\\na\",status=\"200\"} 1\n"
              "# HELP relay_active_tunnels Tunnels attached now.\n"
              "# TYPE relay_active_tunnels gauge\n"
              "relay_active_tunnels 2\n"
              "# HELP relay_request_seconds Request latency.\\nIn seconds \\\\ wall clock.\n"
              "# TYPE relay_request_seconds histogram\n"
              "relay_request_seconds_bucket{tenant=\"acme\",le=\"0.1\"} 1\n"
              "relay_request_seconds_bucket{tenant=\"acme\",le=\"0.5\"} 2\n"
              "relay_request_seconds_bucket{tenant=\"acme\",le=\"1\"} 2\n"
              "relay_request_seconds_bucket{tenant=\"acme\",le=\"+Inf\"} 3\n"
              "relay_request_seconds_sum{tenant=\"acme\"} 7.55\n"
              "relay_request_seconds_count{tenant=\"acme\"} 3\n");
}

TEST(Metrics, UnlabelledHistogramAndEmptyFamilies) {
    metrics_registry r;
    (void)r.counter("by_tenant_total", "Nothing yet.", {"tenant"});  // no series: not exposed
    auto& h = r.histogram("ttfb_seconds", "Time to first byte.", {}, {0.25});
    h.with({}).observe(0.25);  // le is inclusive
    EXPECT_EQ(r.expose(),
              "# HELP ttfb_seconds Time to first byte.\n"
              "# TYPE ttfb_seconds histogram\n"
              "ttfb_seconds_bucket{le=\"0.25\"} 1\n"
              "ttfb_seconds_bucket{le=\"+Inf\"} 1\n"
              "ttfb_seconds_sum 0.25\n"
              "ttfb_seconds_count 1\n");
}

TEST(Metrics, CardinalityBoundCollapsesIntoOther) {
    metrics_registry r(2);
    auto& f = r.counter("req_total", "Requests.", {"route"});
    f.with({"a"}).inc();
    f.with({"b"}).inc();
    f.with({"c"}).inc();
    f.with({"d"}).inc(5);
    f.with({"a"}).inc();              // existing series still counted on its own
    EXPECT_EQ(f.series_count(), 3u);  // a, b, other
    EXPECT_EQ(r.overflows(), 2);
    EXPECT_EQ(r.expose(),
              "# HELP req_total Requests.\n"
              "# TYPE req_total counter\n"
              "req_total{route=\"a\"} 2\n"
              "req_total{route=\"b\"} 1\n"
              "req_total{route=\"other\"} 6\n"
              "# HELP metrics_label_overflow_total Label sets collapsed into the \"other\" series "
              "because a family "
              "reached its series limit.\n"
              "# TYPE metrics_label_overflow_total counter\n"
              "metrics_label_overflow_total{family=\"req_total\"} 2\n");
}

TEST(Metrics, RegistrationRules) {
    metrics_registry r;
    auto& a = r.counter("x_total", "X.", {"l"});
    EXPECT_EQ(&a, &r.counter("x_total", "X.", {"l"}));
    EXPECT_THROW((void)r.gauge("x_total", "X."), std::invalid_argument);
    EXPECT_THROW((void)r.counter("x_total", "X.", {"other"}), std::invalid_argument);
    EXPECT_THROW((void)r.counter("1bad", "X."), std::invalid_argument);
    EXPECT_THROW((void)r.counter("bad-name", "X."), std::invalid_argument);
    EXPECT_THROW((void)r.counter("ok_total", "X.", {"__reserved"}), std::invalid_argument);
    EXPECT_THROW((void)r.histogram("h", "H.", {"le"}, {1}), std::invalid_argument);
    EXPECT_THROW((void)r.histogram("h", "H.", {}, {1, 1}), std::invalid_argument);
    EXPECT_THROW((void)a.with({"a", "b"}), std::invalid_argument);
    a.with({"v"}).inc(-5);  // counters never go down
    EXPECT_EQ(a.with({"v"}).value(), 0);
}

TEST(Metrics, SampleValues) {
    EXPECT_EQ(format_sample_value(1), "1");
    EXPECT_EQ(format_sample_value(0.25), "0.25");
    EXPECT_EQ(format_sample_value(-2), "-2");
    EXPECT_EQ(format_sample_value(std::numeric_limits<double>::infinity()), "+Inf");
    EXPECT_EQ(format_sample_value(-std::numeric_limits<double>::infinity()), "-Inf");
    EXPECT_EQ(format_sample_value(std::numeric_limits<double>::quiet_NaN()), "NaN");
    EXPECT_EQ(format_sample_value(1e21), "1e+21");
}

TEST(Metrics, ConcurrentUpdatesAreCounted) {
    metrics_registry r(8);
    auto& f = r.counter("c_total", "C.", {"k"});
    auto& h = r.histogram("h_seconds", "H.", {}, default_latency_buckets());
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 1000; ++i) {
                f.with({std::to_string((t * 1000 + i) % 16)}).inc();
                h.with({}).observe(0.001 * i);
                if (i % 100 == 0) (void)r.expose();
            }
        });
    for (auto& t : threads) t.join();
    EXPECT_EQ(r.overflows(), 2000);   // 8 of the 16 keys did not fit, 250 times each
    EXPECT_EQ(f.series_count(), 9u);  // 8 + other
    double total = 0;
    std::istringstream lines(r.expose());
    for (std::string line; std::getline(lines, line);)
        if (line.rfind("c_total{", 0) == 0) total += std::stod(line.substr(line.rfind(' ') + 1));
    EXPECT_EQ(total, 4000);
    EXPECT_EQ(h.with({}).count(), 4000u);
    auto text = r.expose();
    EXPECT_NE(text.find("h_seconds_count 4000\n"), std::string::npos);
    EXPECT_NE(text.find("h_seconds_bucket{le=\"+Inf\"} 4000\n"), std::string::npos);
}

TEST(Metrics, ReadsWithoutCreatingSeriesAndMirroredCounters) {
    metrics_registry r;
    auto& f = r.counter("reads_total", "R.", {"k"});
    EXPECT_EQ(f.value({"a"}), 0);
    EXPECT_EQ(f.series_count(), 0u) << "value() must not create a series";
    f.with({"a"}).inc(2);
    f.with({"b"}).inc(3);
    EXPECT_EQ(f.value({"a"}), 2);
    EXPECT_EQ(f.total(), 5);
    auto& h = r.histogram("reads_seconds", "H.", {}, {1});
    h.with({}).observe(0.5);
    h.with({}).observe(2);
    EXPECT_EQ(h.total(), 2);

    auto& c = r.counter("mirrored_total", "M.").with({});
    c.advance_to(10);
    c.advance_to(7);  // a counter never goes down
    EXPECT_EQ(c.value(), 10);
    c.advance_to(12.5);
    EXPECT_EQ(c.value(), 12.5);
}

}  // namespace
}  // namespace tunnel::observe

namespace tunnel::observe {
namespace {

// histogram_quantile as Prometheus computes it from the exposed buckets.
TEST(HistogramQuantile, InterpolatesInsideTheBucketLikePrometheus) {
    const std::vector<double> bounds{0.1, 0.5, 1.0};
    // 10 observations <= 0.1, 10 in (0.1, 0.5], none above.
    const std::vector<std::uint64_t> buckets{10, 10, 0, 0};
    EXPECT_DOUBLE_EQ(histogram_quantile(0.5, bounds, buckets), 0.1);    // rank 10: top of bucket 0
    EXPECT_DOUBLE_EQ(histogram_quantile(0.25, bounds, buckets), 0.05);  // rank 5: half of [0, 0.1]
    EXPECT_DOUBLE_EQ(histogram_quantile(0.75, bounds, buckets),
                     0.3);  // rank 15: half of (0.1, 0.5]
    // A rank in +Inf: the highest finite bound.
    EXPECT_DOUBLE_EQ(histogram_quantile(0.99, bounds, {0, 0, 1, 9}), 1.0);
    EXPECT_TRUE(std::isnan(histogram_quantile(0.5, bounds, {0, 0, 0, 0})));
    EXPECT_TRUE(std::isnan(histogram_quantile(0.5, bounds, {1, 2})));  // wrong bucket count
}

TEST(HistogramQuantile, ReadsARegisteredHistogramsSeries) {
    metrics_registry r;
    auto& h = r.histogram("q_seconds", "q", {"tenant"}, {0.01, 0.1});
    for (int i = 0; i < 4; ++i) h.with({"a"}).observe(0.005);
    h.with({"b"}).observe(0.05);
    auto list = h.list();
    ASSERT_EQ(list.size(), 2u);
    EXPECT_EQ(list[0].first, std::vector<std::string>{"a"});
    EXPECT_EQ(list[0].second->buckets(), (std::vector<std::uint64_t>{4, 0, 0}));
    EXPECT_DOUBLE_EQ(histogram_quantile(0.5, list[0].second->bounds(), list[0].second->buckets()),
                     0.005);
}

}  // namespace
}  // namespace tunnel::observe
