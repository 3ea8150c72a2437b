// W3C Trace Context (https://www.w3.org/TR/trace-context/): the traceparent
// and tracestate fields a request carries, parsed strictly, and the ids of
// new traces and spans (docs/relay.md "Tracing").
//
//   traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
//                version-trace_id (32 hex)-parent_id (16 hex)-flags (2 hex)
//
// A traceparent that does not parse (wrong length or separators, upper-case
// or non-hex digits, an all-zero trace or parent id, version ff) is ignored:
// the receiver starts a new trace and drops the tracestate with it. Versions
// above 00 are read as the spec says (the 00 fields, then '-' or the end) and
// sent on as 00.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tunnel::observe {

using trace_id = std::array<std::uint8_t, 16>;
using span_id = std::array<std::uint8_t, 8>;

// tracestate values longer than this are dropped, not cut (W3C: 32
// list-members; 512 bytes is the size every vendor must propagate).
inline constexpr std::size_t max_tracestate_bytes = 512;

struct trace_parent {
    trace_id trace{};
    span_id parent{};
    std::uint8_t flags = 0;  // bit 0: sampled
    [[nodiscard]] bool sampled() const noexcept { return (flags & 1) != 0; }
};

// The traceparent value, or nullopt when it is malformed (see above).
[[nodiscard]] std::optional<trace_parent> parse_traceparent(std::string_view text) noexcept;

// "00-<trace>-<span>-<flags>".
[[nodiscard]] std::string format_traceparent(const trace_id& trace, const span_id& span,
                                             std::uint8_t flags);

// The tracestate to pass on: `text` trimmed, when it is at most
// max_tracestate_bytes of printable ASCII; else nullopt (dropped).
[[nodiscard]] std::optional<std::string> tracestate_to_pass(std::string_view text);

// Lower-case hex of an id.
[[nodiscard]] std::string to_hex(const trace_id& id);
[[nodiscard]] std::string to_hex(const span_id& id);

[[nodiscard]] bool is_zero(const trace_id& id) noexcept;
[[nodiscard]] bool is_zero(const span_id& id) noexcept;

// Random ids, never all zero (a per-thread generator seeded from the OS:
// ids need to be unique, not secret).
[[nodiscard]] trace_id new_trace_id();
[[nodiscard]] span_id new_span_id();
// A uniform double in [0, 1) from the same generator (sampling).
[[nodiscard]] double random_unit();

}  // namespace tunnel::observe
