// Wall-clock times as people and JSON read them: ISO 8601 in UTC.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace tunnel::core {

// "2026-12-06T17:14:18Z" (whole seconds, UTC).
[[nodiscard]] std::string utc_iso8601(std::chrono::system_clock::time_point t);

// Whole seconds since the Unix epoch (JWT `exp`, SQLite columns), and back.
[[nodiscard]] constexpr std::int64_t unix_seconds(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}
[[nodiscard]] constexpr std::chrono::system_clock::time_point from_unix_seconds(std::int64_t s) {
    return std::chrono::system_clock::time_point(std::chrono::seconds(s));
}

}  // namespace tunnel::core
