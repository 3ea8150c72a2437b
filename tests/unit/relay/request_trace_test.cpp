#include "relay/request_trace.hpp"

#include <gtest/gtest.h>

#include "relay/relay_config.hpp"

namespace tunnel::relay {
namespace {

constexpr const char* caller_parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

http_head head_with(std::vector<http_field> fields) {
    http_head h;
    h.method = "GET";
    h.target = "/";
    h.fields = std::move(fields);
    return h;
}

std::vector<std::string> values(const http_head& h, std::string_view name) {
    std::vector<std::string> out;
    for (const auto& f : h.fields)
        if (f.name == name) out.push_back(f.value);
    return out;
}

TEST(RequestTrace, ContinuesTheCallersTraceUnderTheHopSpan) {
    tracing_config cfg;
    cfg.sample = 0;  // a caller's sampled flag decides for its own trace
    auto h = head_with({{"Host", "x"},
                        {"TraceParent", caller_parent},
                        {"tracestate", "a=1"},
                        {"tracestate", "b=2"}});
    auto t = begin_trace(cfg, h);
    EXPECT_EQ(observe::to_hex(t->trace), "4bf92f3577b34da6a3ce929d0e0e4736");
    EXPECT_EQ(observe::to_hex(t->caller), "00f067aa0ba902b7");
    EXPECT_TRUE(t->sampled);
    EXPECT_STREQ(t->incoming, "accepted");
    EXPECT_NE(t->root, t->hop);
    set_trace_fields(h, *t);
    EXPECT_TRUE(values(h, "TraceParent").empty());  // the caller's field is gone
    const auto tp = values(h, "traceparent");
    ASSERT_EQ(tp.size(), 1u);
    EXPECT_EQ(tp[0], observe::format_traceparent(t->trace, t->hop, 1));
    EXPECT_EQ(values(h, "tracestate"), std::vector<std::string>{"a=1,b=2"});
}

TEST(RequestTrace, StartsANewTraceForAMissingMalformedOrDoubledTraceparent) {
    tracing_config cfg;
    const auto none = begin_trace(cfg, head_with({{"Host", "x"}}));
    EXPECT_STREQ(none->incoming, "none");
    EXPECT_FALSE(observe::is_zero(none->trace));
    EXPECT_TRUE(observe::is_zero(none->caller));
    EXPECT_TRUE(none->sampled);  // sample: 1.0

    auto bad =
        head_with({{"traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},
                   {"tracestate", "a=1"}});
    const auto replaced = begin_trace(cfg, bad);
    EXPECT_STREQ(replaced->incoming, "replaced");
    EXPECT_TRUE(replaced->tracestate.empty());  // it went with the bad traceparent
    set_trace_fields(bad, *replaced);
    EXPECT_EQ(values(bad, "traceparent"), std::vector<std::string>{observe::format_traceparent(
                                              replaced->trace, replaced->hop, 1)});
    EXPECT_TRUE(values(bad, "tracestate").empty());

    const auto doubled = begin_trace(
        cfg, head_with({{"traceparent", caller_parent}, {"traceparent", caller_parent}}));
    EXPECT_STREQ(doubled->incoming, "replaced");
    EXPECT_NE(observe::to_hex(doubled->trace), "4bf92f3577b34da6a3ce929d0e0e4736");
}

TEST(RequestTrace, SamplesNewTracesAtTheConfiguredRateAndDropsOversizedTracestate) {
    tracing_config cfg;
    cfg.sample = 0;
    EXPECT_FALSE(begin_trace(cfg, head_with({}))->sampled);
    const auto unsampled = begin_trace(
        cfg,
        head_with({{"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}}));
    EXPECT_FALSE(unsampled->sampled);
    cfg.sample = 0.5;
    int sampled = 0;
    for (int i = 0; i < 2000; ++i) sampled += begin_trace(cfg, head_with({}))->sampled;
    EXPECT_GT(sampled, 800);
    EXPECT_LT(sampled, 1200);

    const auto big = begin_trace(cfg, head_with({{"traceparent", caller_parent},
                                                 {"tracestate", std::string(400, 'a')},
                                                 {"tracestate", std::string(400, 'b')}}));
    EXPECT_TRUE(big->tracestate.empty());
}

TEST(RequestTrace, FinishedSpansLinkToTheRootAndTheHop) {
    tracing_config cfg;
    observe::span_exporter_options o;
    o.interval = std::chrono::minutes(1);
    observe::span_exporter exporter(o);
    auto t = begin_trace(cfg, head_with({{"traceparent", caller_parent}}));
    const auto now = std::chrono::steady_clock::now();
    t->admission_start = now;
    t->admitted = now;
    t->hop_start = now;
    t->head_sent = now;
    t->first_byte = now;
    finish_trace(exporter, *t, 200, "acme", "web", "127.0.0.1");
    // No queue span (it did not wait): root, admission, hop, ttfb.
    exporter.stop();
    EXPECT_EQ(exporter.exported(), 4u);
    auto unsampled = begin_trace(
        cfg,
        head_with({{"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}}));
    observe::span_exporter second(o);
    finish_trace(second, *unsampled, 200, "acme", "web", "127.0.0.1");
    second.stop();
    EXPECT_EQ(second.exported(), 0u);

    // A request answered while it waited in the queue: the request and its
    // queue wait, nothing after.
    auto queued = begin_trace(cfg, head_with({}));
    queued->queued_from = now;
    queued->queued_until = now;
    observe::span_exporter third(o);
    finish_trace(third, *queued, 503, "", "", "127.0.0.1");
    third.stop();
    EXPECT_EQ(third.exported(), 2u);
}

TEST(TracingConfig, IsReadStrictly) {
    const std::string base = "listen: 127.0.0.1:0\nhost_key_file: /k\njwt: {secret_file: /s}\n";
    auto ok = parse_relay_config(base +
                                     "tracing:\n  otlp_endpoint: http://127.0.0.1:4318\n"
                                     "  sample: 0.25\n  service_name: relay-eu\n"
                                     "  log_spans: true\n  export_interval: 200ms\n",
                                 "relay.yaml");
    ASSERT_TRUE(ok) << ok.error().message;
    ASSERT_TRUE(ok->tracing.otlp_endpoint);
    EXPECT_EQ(ok->tracing.otlp_endpoint->target, "/v1/traces");
    EXPECT_DOUBLE_EQ(ok->tracing.sample, 0.25);
    EXPECT_EQ(ok->tracing.service_name, "relay-eu");
    EXPECT_TRUE(ok->tracing.log_spans);
    EXPECT_EQ(ok->tracing.export_interval, std::chrono::milliseconds(200));
    EXPECT_TRUE(ok->tracing.enabled());

    auto off = parse_relay_config(base, "relay.yaml");
    ASSERT_TRUE(off) << off.error().message;
    EXPECT_FALSE(off->tracing.enabled());

    auto bad = parse_relay_config(base +
                                      "tracing:\n  otlp_endpoint: https://collector/v1/traces\n"
                                      "  sample: 1.5\n  service_name: 'a b'\n  log_spans: maybe\n"
                                      "  export_interval: 10ms\n  endpoint: x\n",
                                  "relay.yaml");
    ASSERT_FALSE(bad);
    const auto& m = bad.error().message;
    for (const char* path : {"tracing.otlp_endpoint", "tracing.sample", "tracing.service_name",
                             "tracing.log_spans", "tracing.export_interval", "tracing.endpoint"})
        EXPECT_NE(m.find(path), std::string::npos) << path << "\n" << m;
    auto negative = parse_relay_config(base + "tracing:\n  sample: -0.5\n", "relay.yaml");
    ASSERT_FALSE(negative);
    EXPECT_NE(negative.error().message.find("tracing.sample"), std::string::npos);
}

}  // namespace
}  // namespace tunnel::relay
