// The relay's tracing (docs/relay.md "Tracing"): W3C traceparent accepted or
// created per request and sent on to the origin, and the relay's spans
// logged and/or exported over OTLP/HTTP (JSON).
//
//   tracing:
//     otlp_endpoint: http://127.0.0.1:4318/v1/traces   # http:// only
//     sample: 1.0                  # share of new traces recorded, 0..1
//     service_name: tunnel-relay   # the spans' service.name
//     log_spans: false             # one info line per span (needs -v)
//     export_interval: 1s          # how often a partial batch is sent
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "core/yaml_config.hpp"
#include "observe/span_exporter.hpp"

namespace tunnel::relay {

struct tracing_config {
    std::optional<observe::otlp_endpoint> otlp_endpoint;
    // New traces (the caller sent no valid traceparent) are recorded with
    // this probability; a caller's own sampled flag decides for its trace.
    double sample = 1.0;
    std::string service_name = "tunnel-relay";
    bool log_spans = false;
    // A batch goes when it is full (512 spans) or this long after the last.
    std::chrono::milliseconds export_interval{std::chrono::seconds(1)};

    // Tracing is on (traceparent handled, spans recorded) when spans go
    // somewhere; off, the relay passes the caller's fields through untouched.
    [[nodiscard]] bool enabled() const noexcept { return otlp_endpoint.has_value() || log_spans; }
};

// Reads `tracing:`; problems go to `r` with their path.
void read_tracing_config(core::yaml_reader& r, const YAML::Node& node, const std::string& path,
                         tracing_config& out);

// "key: value" lines for describe(relay_config).
[[nodiscard]] std::vector<std::string> describe(const tracing_config& tracing);

}  // namespace tunnel::relay
