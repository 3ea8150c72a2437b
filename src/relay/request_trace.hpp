// The trace of one public request while the relay serves it (docs/relay.md
// "Tracing"). With tracing on (tracing_config::enabled), every proxied
// request gets one: the caller's traceparent when it is valid, else a new
// trace (a malformed one is replaced, never passed on). The origin's request
// carries a traceparent whose parent is the relay's tunnel-hop span. When the
// request ends, its spans go to the relay's span_exporter (if sampled):
//
//   relay.request      server    head read -> request done (parent: caller's)
//     relay.queue      internal  waiting for a leased name's tunnel (if it did)
//     relay.admission  internal  routing, limits, breaker, visitor access
//     relay.tunnel_hop client    channel take/open -> the origin's response head
//       relay.origin_ttfb internal  request head in the tunnel -> response head
//
// With tracing off, none of this exists (a null pointer per request) and the
// caller's traceparent/tracestate reach the origin untouched.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "observe/metrics.hpp"
#include "observe/span_exporter.hpp"
#include "observe/trace_context.hpp"
#include "relay/http_tracker.hpp"
#include "relay/tracing_config.hpp"

namespace tunnel::relay {

struct request_trace {
    using steady = std::chrono::steady_clock;

    observe::trace_id trace{};
    observe::span_id root{};    // relay.request
    observe::span_id caller{};  // the caller's parent id; zero: the relay started the trace
    observe::span_id hop{};     // relay.tunnel_hop, the origin's parent
    bool sampled = false;
    std::string tracestate;         // passed on to the origin ("": none)
    const char* incoming = "none";  // the caller's traceparent: none, accepted, replaced
    std::string method;

    std::chrono::system_clock::time_point wall_start;
    steady::time_point start;  // the head was read
    steady::time_point queued_from{}, queued_until{};
    steady::time_point admission_start{}, admitted{};
    steady::time_point hop_start{}, head_sent{}, first_byte{};
    bool reused = false;  // the channel came from the keep-alive pool
    int attempts = 0;     // channels the request was written to
};

// The exporter for `config` when tracing is on (its counters in `registry`:
// relay_spans_total{outcome}), else null.
[[nodiscard]] std::unique_ptr<observe::span_exporter> make_tracer(
    const tracing_config& config, observe::metrics_registry& registry);

// The trace of a request whose head was just read.
[[nodiscard]] std::unique_ptr<request_trace> begin_trace(const tracing_config& config,
                                                         const http_head& head);

// The caller's traceparent and tracestate fields replaced by the relay's:
// traceparent 00-<trace>-<hop>-<flags>, tracestate as it came (when valid).
void set_trace_fields(http_head& head, const request_trace& trace);

// The request's spans (see above) to `exporter`, when sampled. `status`: the
// status sent to the caller (0: none); tenant/name empty when the route is
// unknown.
void finish_trace(observe::span_exporter& exporter, const request_trace& trace, int status,
                  std::string_view tenant, std::string_view name, std::string_view client_ip);

}  // namespace tunnel::relay
