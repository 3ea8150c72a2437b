// Durations as users write them on the command line and in configuration:
// `500ms`, `30s`, `5m`, `1h`, `1h30m`, `1.5s` (ARCHITECTURE §9).
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace tunnel::core {

// Parses a non-negative duration with millisecond resolution.
//
// Grammar: one or more `NUMBER UNIT` terms, with no spaces, e.g. `1h30m`,
// `2m3.5s`. NUMBER is decimal digits with an optional fraction (`1.5`, `.5`,
// `5.`); UNIT is `h`, `m`, `s` or `ms`. Terms are summed; their units must
// go from largest to smallest and each unit may appear once (`30m1h` and
// `5m5m` are refused as likely typos). As a special case the whole text may
// be a bare NUMBER, which means seconds (`30` == `30s`, `0.25` == `250ms`),
// the way `ssh -o ConnectTimeout=30` reads it.
//
// Fails with errc::invalid_argument when the text is empty, negative
// (`-5s`), has an unknown or missing unit (`5x`, `1h30`), trailing junk or
// spaces, a value finer than a millisecond (`1.5ms`), or a total too large
// for std::chrono::milliseconds. The message quotes the input and says what
// to write instead, e.g.
//   invalid duration "5x": unknown unit "x"; use a number with a unit, e.g. 500ms, 30s, 5m, 1h
[[nodiscard]] result<std::chrono::milliseconds> parse_duration(std::string_view text);

// Formats a duration the way parse_duration reads it, shortest form first:
//   0 -> "0s", 250ms -> "250ms", 1234ms -> "1.234s", 30s -> "30s",
//   123s -> "2m3s", 120500ms -> "2m0.5s", 5400s -> "1h30m", 3605s -> "1h5s".
// Zero components are omitted; hours are not folded into days. Negative
// durations get a leading '-' (which parse_duration refuses). For every
// d >= 0, parse_duration(format_duration(d)) == d.
[[nodiscard]] std::string format_duration(std::chrono::milliseconds duration);

}  // namespace tunnel::core
