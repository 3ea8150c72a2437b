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

}  // namespace tunnel::observe
