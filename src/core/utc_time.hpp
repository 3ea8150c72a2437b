// Wall-clock times as people and JSON read them: ISO 8601 in UTC.
#pragma once

#include <chrono>
#include <string>

namespace tunnel::core {

// "2026-12-06T17:14:18Z" (whole seconds, UTC).
[[nodiscard]] std::string utc_iso8601(std::chrono::system_clock::time_point t);

}  // namespace tunnel::core
