#include "relay/tracing_config.hpp"

#include <fmt/format.h>

#include "core/duration.hpp"
#include "core/log_text.hpp"

namespace tunnel::relay {

namespace {

// A service.name: printable ASCII, bounded (it goes into every export).
bool valid_service_name(const std::string& s) {
    if (s.empty() || s.size() > 128) return false;
    for (char c : s)
        if (c <= 0x20 || c >= 0x7f) return false;
    return true;
}

}  // namespace

void read_tracing_config(core::yaml_reader& r, const YAML::Node& node, const std::string& path,
                         tracing_config& out) {
    if (!r.expect_map(node, path,
                      {"otlp_endpoint", "sample", "service_name", "log_spans", "export_interval"}))
        return;
    if (node["otlp_endpoint"]) {
        const std::string key = path + ".otlp_endpoint";
        if (auto s = r.string(node["otlp_endpoint"], key)) {
            auto ep = observe::parse_otlp_endpoint(*s);
            if (!ep)
                r.error(key, ep.error().message);
            else
                out.otlp_endpoint = std::move(*ep);
        }
    }
    if (node["sample"]) {
        const std::string key = path + ".sample";
        if (auto v = r.number(node["sample"], key, -1, 1)) {
            if (*v < 0)
                r.error(key, "must be from 0 (record no new traces) to 1 (record all), e.g. 0.1");
            else
                out.sample = *v;
        }
    }
    if (node["service_name"]) {
        const std::string key = path + ".service_name";
        if (auto s = r.string(node["service_name"], key)) {
            if (!valid_service_name(*s))
                r.error(key, fmt::format("\"{}\" must be 1-128 printable characters without "
                                         "spaces, e.g. tunnel-relay",
                                         core::log_text(*s, 64)));
            else
                out.service_name = *s;
        }
    }
    if (node["log_spans"])
        if (auto b = r.boolean(node["log_spans"], path + ".log_spans")) out.log_spans = *b;
    if (node["export_interval"]) {
        const std::string key = path + ".export_interval";
        if (auto d = r.duration(node["export_interval"], key)) {
            if (*d < std::chrono::milliseconds(100) || *d > std::chrono::minutes(1))
                r.error(key, "must be from 100ms to 1m, e.g. 1s");
            else
                out.export_interval = *d;
        }
    }
}

std::vector<std::string> describe(const tracing_config& t) {
    if (!t.enabled()) return {"tracing: off"};
    return {fmt::format("tracing.otlp_endpoint: {}",
                        t.otlp_endpoint ? t.otlp_endpoint->to_string() : "(none)"),
            fmt::format("tracing.sample: {}", t.sample),
            fmt::format("tracing.service_name: {}", t.service_name),
            fmt::format("tracing.log_spans: {}", t.log_spans ? "true" : "false"),
            fmt::format("tracing.export_interval: {}", core::format_duration(t.export_interval))};
}

}  // namespace tunnel::relay
