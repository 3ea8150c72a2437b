// Structured logging setup: human text on a TTY, one JSON object per line with
// --log-format json. Never log secrets: log a fingerprint instead (STYLE 16).
#pragma once

#include <string_view>

#include "core/error.hpp"

namespace tunnel::observe {

enum class log_format { text, json };

[[nodiscard]] core::result<log_format> parse_log_format(std::string_view text);

// verbosity: 0 = warnings and errors, 1 = info, 2 = debug, 3+ = trace.
// Logs go to stderr so stdout stays the command's own output.
void setup_logging(log_format format, int verbosity);

// Logs `msg` at info with a JSON value (`json_value`: one serialised JSON
// value): with --log-format json as a field of the line's object,
// {"ts":...,"level":"info","msg":"span","span":{...}}; in text as
// "span {...}". For records a machine reads (spans: docs/relay.md "Tracing").
void log_info_json(std::string_view msg, std::string_view key, std::string_view json_value);

}  // namespace tunnel::observe
