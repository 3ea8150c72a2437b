#include "observe/otlp_json.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "observe/span_exporter.hpp"

namespace tunnel::observe {
namespace {

span_record sample_span(bool root) {
    span_record s;
    s.trace = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")->trace;
    s.id = new_span_id();
    if (!root) s.parent = new_span_id();
    s.name = root ? "relay.request" : "relay.tunnel_hop";
    s.kind = root ? span_kind::server : span_kind::client;
    s.start_ns = 1'700'000'000'000'000'000ULL;
    s.end_ns = s.start_ns + 2'500'000;
    s.add("http.request.method", std::string("GET"));
    s.add("http.response.status_code", std::int64_t{502});
    s.add("tunnel.channel.reused", true);
    s.status = span_status::error;
    s.status_message = "HTTP 502";
    return s;
}

TEST(OtlpJson, EncodesSpansTheWayOtlpHttpJsonDoes) {
    const auto root = sample_span(true);
    const auto child = sample_span(false);
    const auto body = nlohmann::json::parse(otlp_traces_json({root, child}, "relay-eu"));
    const auto& rs = body.at("resourceSpans").at(0);
    EXPECT_EQ(rs.at("resource").at("attributes").at(0).at("key"), "service.name");
    EXPECT_EQ(rs.at("resource").at("attributes").at(0).at("value").at("stringValue"), "relay-eu");
    const auto& spans = rs.at("scopeSpans").at(0).at("spans");
    ASSERT_EQ(spans.size(), 2u);
    const auto& r = spans.at(0);
    EXPECT_EQ(r.at("traceId"), "4bf92f3577b34da6a3ce929d0e0e4736");
    EXPECT_EQ(r.at("spanId"), to_hex(root.id));
    EXPECT_FALSE(r.contains("parentSpanId"));  // a root
    EXPECT_EQ(r.at("name"), "relay.request");
    EXPECT_EQ(r.at("kind"), 2);
    // 64-bit numbers are decimal strings in OTLP/JSON.
    EXPECT_EQ(r.at("startTimeUnixNano"), "1700000000000000000");
    EXPECT_EQ(r.at("endTimeUnixNano"), "1700000000002500000");
    EXPECT_EQ(r.at("status").at("code"), 2);
    EXPECT_EQ(r.at("status").at("message"), "HTTP 502");
    const auto& attrs = r.at("attributes");
    ASSERT_EQ(attrs.size(), 3u);
    EXPECT_EQ(attrs.at(0).at("key"), "http.request.method");
    EXPECT_EQ(attrs.at(0).at("value").at("stringValue"), "GET");
    EXPECT_EQ(attrs.at(1).at("value").at("intValue"), "502");
    EXPECT_EQ(attrs.at(2).at("value").at("boolValue"), true);
    const auto& c = spans.at(1);
    EXPECT_EQ(c.at("parentSpanId"), to_hex(child.parent));
    EXPECT_EQ(c.at("kind"), 3);
}

TEST(OtlpJson, LogsASpanAsOneFlatObject) {
    const auto s = sample_span(false);
    const auto j = nlohmann::json::parse(span_log_json(s));
    EXPECT_EQ(j.at("trace_id"), "4bf92f3577b34da6a3ce929d0e0e4736");
    EXPECT_EQ(j.at("span_id"), to_hex(s.id));
    EXPECT_EQ(j.at("parent_span_id"), to_hex(s.parent));
    EXPECT_EQ(j.at("kind"), "client");
    EXPECT_EQ(j.at("duration_us"), 2500);
    EXPECT_EQ(j.at("status"), "error");
    EXPECT_EQ(j.at("attributes").at("http.response.status_code"), 502);
}

TEST(OtlpJson, NeverThrowsOnBytesThatAreNotUtf8) {
    auto s = sample_span(true);
    s.add("http.request.method", std::string("G\xff\xfeT"));
    EXPECT_FALSE(
        nlohmann::json::parse(otlp_traces_json({s}, "relay"), nullptr, false).is_discarded());
    EXPECT_FALSE(nlohmann::json::parse(span_log_json(s), nullptr, false).is_discarded());
}

TEST(OtlpEndpoint, ParsesHttpUrlsWithOtlpDefaults) {
    auto a = parse_otlp_endpoint("http://collector.internal");
    ASSERT_TRUE(a) << a.error().message;
    EXPECT_EQ(a->host, "collector.internal");
    EXPECT_EQ(a->port, 4318);
    EXPECT_EQ(a->target, "/v1/traces");
    auto b = parse_otlp_endpoint("http://127.0.0.1:9999/otlp/v1/traces");
    ASSERT_TRUE(b) << b.error().message;
    EXPECT_EQ(b->host, "127.0.0.1");
    EXPECT_EQ(b->port, 9999);
    EXPECT_EQ(b->target, "/otlp/v1/traces");
    EXPECT_EQ(b->to_string(), "http://127.0.0.1:9999/otlp/v1/traces");
    auto c = parse_otlp_endpoint("http://[::1]:4318/");
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->host, "::1");
    EXPECT_EQ(c->target, "/v1/traces");
}

TEST(OtlpEndpoint, RefusesWhatItCannotSendTo) {
    auto https = parse_otlp_endpoint("https://collector:4318/v1/traces");
    ASSERT_FALSE(https);
    EXPECT_NE(https.error().message.find("only http://"), std::string::npos)
        << https.error().message;
    for (const char* bad : {"collector:4318", "ftp://x/", "http://", "http://:4318/", "http://h:0/",
                            "http://h:65536/", "http://h:12x/", "http://user:pw@h/", "http://h/a b",
                            "http://[::1/", "http://h_1/"})
        EXPECT_FALSE(parse_otlp_endpoint(bad)) << bad;
}

TEST(SpanExporter, DropsAndCountsWhatDoesNotFitWithoutWaiting) {
    metrics_registry registry;
    auto& spans = registry.counter("test_spans_total", "spans", {"outcome"});
    span_exporter_options o;  // no endpoint, no log: spans are only counted
    o.max_queue = 3;
    o.max_batch = 100;
    o.interval = std::chrono::minutes(1);
    o.spans = &spans;
    span_exporter exporter(o);
    std::vector<span_record> five(5, sample_span(true));
    exporter.record(std::move(five));
    EXPECT_EQ(exporter.dropped(), 2u);
    EXPECT_EQ(spans.value({"dropped"}), 2);
    // stop() sends what is queued although the interval has not passed.
    exporter.stop();
    EXPECT_EQ(exporter.exported(), 3u);
    EXPECT_EQ(spans.value({"exported"}), 3);
    // After stop, nothing is taken.
    exporter.record({sample_span(true)});
    EXPECT_EQ(exporter.dropped(), 3u);
}

}  // namespace
}  // namespace tunnel::observe
