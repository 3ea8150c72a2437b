#include "observe/otlp_json.hpp"

#include <nlohmann/json.hpp>

namespace tunnel::observe {

namespace {

using json = nlohmann::json;

json any_value(const span_attribute& a) {
    // OTLP/JSON: 64-bit integers are decimal strings.
    if (const auto* s = std::get_if<std::string>(&a.value)) return {{"stringValue", *s}};
    if (const auto* i = std::get_if<std::int64_t>(&a.value))
        return {{"intValue", std::to_string(*i)}};
    return {{"boolValue", std::get<bool>(a.value)}};
}

const char* kind_name(span_kind k) {
    switch (k) {
        case span_kind::server:
            return "server";
        case span_kind::client:
            return "client";
        default:
            return "internal";
    }
}

const char* status_name(span_status s) {
    switch (s) {
        case span_status::ok:
            return "ok";
        case span_status::error:
            return "error";
        default:
            return "unset";
    }
}

std::string dump(const json& j) {
    // Attribute values may hold bytes from callers: never throw on bad UTF-8.
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

std::string otlp_traces_json(const std::vector<span_record>& spans, std::string_view service_name) {
    json list = json::array();
    for (const auto& s : spans) {
        json attrs = json::array();
        for (const auto& a : s.attributes)
            attrs.push_back({{"key", a.key}, {"value", any_value(a)}});
        json status = {{"code", static_cast<int>(s.status)}};
        if (!s.status_message.empty()) status["message"] = s.status_message;
        json span = {{"traceId", to_hex(s.trace)},
                     {"spanId", to_hex(s.id)},
                     {"name", s.name},
                     {"kind", static_cast<int>(s.kind)},
                     {"startTimeUnixNano", std::to_string(s.start_ns)},
                     {"endTimeUnixNano", std::to_string(s.end_ns)},
                     {"attributes", std::move(attrs)},
                     {"status", std::move(status)}};
        if (!is_zero(s.parent)) span["parentSpanId"] = to_hex(s.parent);
        list.push_back(std::move(span));
    }
    json resource = {
        {"attributes", json::array({{{"key", "service.name"},
                                     {"value", {{"stringValue", std::string(service_name)}}}}})}};
    json body = {{"resourceSpans",
                  json::array({{{"resource", std::move(resource)},
                                {"scopeSpans", json::array({{{"scope", {{"name", "tunnel"}}},
                                                             {"spans", std::move(list)}}})}}})}};
    return dump(body);
}

std::string span_log_json(const span_record& s) {
    json attrs = json::object();
    for (const auto& a : s.attributes)
        std::visit([&](const auto& v) { attrs[a.key] = v; }, a.value);
    json j = {{"trace_id", to_hex(s.trace)}, {"span_id", to_hex(s.id)}};
    if (!is_zero(s.parent)) j["parent_span_id"] = to_hex(s.parent);
    j["name"] = s.name;
    j["kind"] = kind_name(s.kind);
    j["start_unix_ns"] = s.start_ns;
    j["duration_us"] = s.end_ns >= s.start_ns ? (s.end_ns - s.start_ns) / 1000 : 0;
    j["status"] = status_name(s.status);
    if (!s.status_message.empty()) j["status_message"] = s.status_message;
    j["attributes"] = std::move(attrs);
    return dump(j);
}

}  // namespace tunnel::observe
