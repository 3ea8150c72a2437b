#include "relay/request_trace.hpp"

#include <utility>
#include <vector>

#include <fmt/format.h>

namespace tunnel::relay {

namespace {

using steady = std::chrono::steady_clock;
using observe::span_kind;
using observe::span_record;
using observe::span_status;

bool iequal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

constexpr bool set(steady::time_point t) {
    return t != steady::time_point{};
}

}  // namespace

std::unique_ptr<observe::span_exporter> make_tracer(const tracing_config& config,
                                                    observe::metrics_registry& registry) {
    if (!config.enabled()) return nullptr;
    observe::span_exporter_options o;
    o.otlp = config.otlp_endpoint;
    o.service_name = config.service_name;
    o.log_spans = config.log_spans;
    o.interval = config.export_interval;
    o.spans = &registry.counter("relay_spans_total",
                                "Trace spans by outcome: exported, dropped (queue full or not "
                                "sent at shutdown), failed (the collector did not take them).",
                                {"outcome"});
    return std::make_unique<observe::span_exporter>(std::move(o));
}

std::unique_ptr<request_trace> begin_trace(const tracing_config& config, const http_head& head) {
    auto t = std::make_unique<request_trace>();
    t->start = steady::now();
    t->wall_start = std::chrono::system_clock::now();
    t->method = head.method.substr(0, 32);
    // One traceparent field, valid; several are as bad as a malformed one.
    const std::string* parent_text = nullptr;
    int parents = 0;
    std::string state;
    bool state_ok = true;
    for (const auto& f : head.fields) {
        if (iequal(f.name, "traceparent")) {
            ++parents;
            parent_text = &f.value;
        } else if (iequal(f.name, "tracestate")) {
            // Several tracestate fields are one list (RFC 9110 §5.3).
            if (!state.empty()) state += ',';
            state += f.value;
            state_ok = state.size() <= observe::max_tracestate_bytes;
        }
    }
    std::optional<observe::trace_parent> parent;
    if (parents == 1) parent = observe::parse_traceparent(*parent_text);
    if (parent) {
        t->trace = parent->trace;
        t->caller = parent->parent;
        t->sampled = parent->sampled();
        t->incoming = "accepted";
        // The tracestate goes with the traceparent it belongs to, or not at all.
        if (state_ok)
            if (auto s = observe::tracestate_to_pass(state)) t->tracestate = std::move(*s);
    } else {
        t->trace = observe::new_trace_id();
        t->sampled = config.sample >= 1.0 || observe::random_unit() < config.sample;
        t->incoming = parents == 0 ? "none" : "replaced";
    }
    t->root = observe::new_span_id();
    t->hop = observe::new_span_id();
    return t;
}

void set_trace_fields(http_head& head, const request_trace& t) {
    std::erase_if(head.fields, [](const http_field& f) {
        return iequal(f.name, "traceparent") || iequal(f.name, "tracestate");
    });
    head.fields.push_back(
        {"traceparent", observe::format_traceparent(t.trace, t.hop, t.sampled ? 1 : 0)});
    if (!t.tracestate.empty()) head.fields.push_back({"tracestate", t.tracestate});
}

void finish_trace(observe::span_exporter& exporter, const request_trace& t, int status,
                  std::string_view tenant, std::string_view name, std::string_view client_ip) {
    if (!t.sampled) return;
    const auto end = steady::now();
    const auto wall0 = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(t.wall_start.time_since_epoch())
            .count());
    auto unix_ns = [&](steady::time_point p) {
        const auto since = std::chrono::duration_cast<std::chrono::nanoseconds>(p - t.start);
        return wall0 + static_cast<std::uint64_t>(std::max<std::int64_t>(since.count(), 0));
    };
    auto span = [&](const observe::span_id& id, const observe::span_id& parent, const char* what,
                    span_kind kind, steady::time_point from, steady::time_point to) {
        span_record s;
        s.trace = t.trace;
        s.id = id;
        s.parent = parent;
        s.name = what;
        s.kind = kind;
        s.start_ns = unix_ns(from);
        s.end_ns = unix_ns(to);
        return s;
    };
    std::vector<span_record> spans;
    spans.reserve(5);

    auto root = span(t.root, t.caller, "relay.request", span_kind::server, t.start, end);
    root.add("http.request.method", t.method);
    if (status > 0) root.add("http.response.status_code", std::int64_t{status});
    if (!tenant.empty()) root.add("tunnel.tenant", std::string(tenant));
    if (!name.empty()) root.add("tunnel.name", std::string(name));
    root.add("client.address", std::string(client_ip));
    root.add("tunnel.traceparent", std::string(t.incoming));
    if (status >= 500) {
        root.status = span_status::error;
        root.status_message = fmt::format("HTTP {}", status);
    }
    spans.push_back(std::move(root));

    if (set(t.queued_from)) {
        const auto until = set(t.queued_until) ? t.queued_until : end;
        auto q = span(observe::new_span_id(), t.root, "relay.queue", span_kind::internal,
                      t.queued_from, until);
        if (!set(t.admission_start)) {
            q.status = span_status::error;
            q.status_message = status > 0 ? fmt::format("answered {} while queued", status)
                                          : "the caller left the queue";
        }
        spans.push_back(std::move(q));
    }
    if (set(t.admission_start)) {
        auto a = span(observe::new_span_id(), t.root, "relay.admission", span_kind::internal,
                      t.admission_start, set(t.admitted) ? t.admitted : end);
        if (!set(t.admitted)) {
            a.status = span_status::error;
            a.status_message = status > 0 ? fmt::format("refused: HTTP {}", status) : "refused";
        }
        spans.push_back(std::move(a));
    }
    if (set(t.hop_start)) {
        const bool answered = set(t.first_byte);
        auto h = span(t.hop, t.root, "relay.tunnel_hop", span_kind::client, t.hop_start,
                      answered ? t.first_byte : end);
        h.add("tunnel.channel.reused", t.reused);
        h.add("tunnel.channel.attempts", std::int64_t{t.attempts});
        if (!answered) {
            h.status = span_status::error;
            h.status_message = "no response head from the origin";
        }
        spans.push_back(std::move(h));
        if (set(t.head_sent) && answered)
            spans.push_back(span(observe::new_span_id(), t.hop, "relay.origin_ttfb",
                                 span_kind::internal, t.head_sent, t.first_byte));
    }
    exporter.record(std::move(spans));
}

}  // namespace tunnel::relay
