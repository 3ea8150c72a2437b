// Text pieces of `tunnel ui` (pure, unit-tested): sparklines from RTT
// samples, RTT, byte rates, health scores, failure predictions ("fails in
// ~12s ± 3s" or "stable"), one-line event summaries, and fitting text into a
// number of terminal columns. Strings from the manager are sanitised first
// (printable ASCII only), so a column count is a code point count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace tunnel::ui {

// Printable ASCII of `s` (others become '?'), at most `max` bytes.
[[nodiscard]] std::string sanitize(std::string_view s, std::size_t max = 200);

// Terminal columns of UTF-8 text whose code points are all one column wide.
[[nodiscard]] std::size_t columns(std::string_view s) noexcept;

// `s` cut to `width` columns ('~' marks a cut), then padded with spaces to
// exactly `width` columns when `pad`.
[[nodiscard]] std::string fit(std::string_view s, std::size_t width, bool pad = false);

// The last `width` samples as bars from the lowest to the highest of them
// (eight levels: "▁▂▃▄▅▆▇█", or "_.-:=+*#" without Unicode); a flat series is
// all lowest bars. Empty for no samples or width 0.
[[nodiscard]] std::string sparkline(const std::vector<double>& samples, std::size_t width,
                                    bool unicode);

// "-", "0.42ms", "12.3ms", "1.25s".
[[nodiscard]] std::string format_rtt(std::optional<double> ms);
// "0B/s", "512B/s", "1.5K/s", "2.0M/s", "1.1G/s".
[[nodiscard]] std::string format_rate(std::optional<double> bytes_per_s);
// "12s", "5m", "3h" (rounded).
[[nodiscard]] std::string format_seconds(double s);

struct prediction {
    double in_s = 0;
    double error_s = 0;
};

// "-" while the transport is not up; "stable" when nothing is predicted;
// "failing now" at 0 s; else "fails in ~12s ± 3s" ("+-" without Unicode).
[[nodiscard]] std::string format_prediction(const std::optional<prediction>& p, bool up,
                                            bool unicode = true);

// How a score reads: good (≥ 70), fair (≥ 40), poor, or none.
enum class score_class { none, good, fair, poor };
[[nodiscard]] score_class classify_score(std::optional<int> score) noexcept;

// An event as one line without its time and link: "switch to tcp#1 from #0:
// tunnel switch", "transport_down socat: ...", else "type key=value ...".
[[nodiscard]] std::string describe_event(const nlohmann::json& event);

// "HH:MM:SS" of a time in ms since the epoch, in local time.
[[nodiscard]] std::string format_clock(std::int64_t time_ms);

}  // namespace tunnel::ui
