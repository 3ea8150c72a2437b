// One finished span (docs/relay.md "Tracing"): what the relay measured of a
// request, with the ids that tie it into its trace. Built by the code that
// timed it, then handed to a span_exporter (span_exporter.hpp), which logs
// and exports it off the request's thread.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "observe/trace_context.hpp"

namespace tunnel::observe {

// OTLP's SpanKind numbers.
enum class span_kind : int { internal = 1, server = 2, client = 3 };
// OTLP's StatusCode numbers.
enum class span_status : int { unset = 0, ok = 1, error = 2 };

struct span_attribute {
    std::string key;
    std::variant<std::string, std::int64_t, bool> value;
};

struct span_record {
    trace_id trace{};
    span_id id{};
    span_id parent{};  // all zero: a root span (of this trace, in this process)
    std::string name;  // "relay.request"
    span_kind kind = span_kind::internal;
    std::uint64_t start_ns = 0;  // Unix time, nanoseconds
    std::uint64_t end_ns = 0;
    std::vector<span_attribute> attributes;
    span_status status = span_status::unset;
    std::string status_message;  // for error: short, never a secret

    void add(std::string key, std::string value) {
        attributes.push_back({std::move(key), std::move(value)});
    }
    void add(std::string key, std::int64_t value) { attributes.push_back({std::move(key), value}); }
    void add(std::string key, bool value) { attributes.push_back({std::move(key), value}); }
};

}  // namespace tunnel::observe
