// Spans in the OTLP/HTTP JSON encoding
// (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding): the
// body of a POST to a collector's /v1/traces, and the one-line JSON form the
// relay logs spans in. Pure functions, unit-tested in
// tests/unit/observe/otlp_json_test.cpp.
//
//   {"resourceSpans":[{"resource":{"attributes":[{"key":"service.name",...}]},
//     "scopeSpans":[{"scope":{"name":"tunnel"},"spans":[{"traceId":"<32 hex>",
//     "spanId":"<16 hex>","parentSpanId":"<16 hex>","name":"relay.request",
//     "kind":2,"startTimeUnixNano":"...","endTimeUnixNano":"...",
//     "attributes":[...],"status":{"code":0}}]}]}]}
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "observe/span_record.hpp"

namespace tunnel::observe {

// The export request body for `spans` from the service `service_name`.
[[nodiscard]] std::string otlp_traces_json(const std::vector<span_record>& spans,
                                           std::string_view service_name);

// One span as a flat JSON object for the log: {"trace_id", "span_id",
// "parent_span_id" (absent for a root), "name", "kind", "start_unix_ns",
// "duration_us", "status", "status_message", "attributes": {...}}.
[[nodiscard]] std::string span_log_json(const span_record& span);

}  // namespace tunnel::observe
