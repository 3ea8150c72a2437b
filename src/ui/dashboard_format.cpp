#include "ui/dashboard_format.hpp"

#include <algorithm>
#include <cmath>
#include <ctime>

#include <fmt/format.h>

namespace tunnel::ui {

namespace {

bool continuation(char c) noexcept {
    return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

std::string value_text(const nlohmann::json& v) {
    if (v.is_string()) return sanitize(v.get_ref<const std::string&>());
    if (v.is_null()) return "-";
    if (v.is_number_float()) return fmt::format("{:g}", v.get<double>());
    return sanitize(v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

std::string text_of(const nlohmann::json& e, const char* key) {
    auto it = e.find(key);
    return it == e.end() ? std::string() : value_text(*it);
}

}  // namespace

std::string sanitize(std::string_view s, std::size_t max) {
    std::string out;
    out.reserve(std::min(s.size(), max));
    for (char c : s) {
        if (out.size() >= max) break;
        out += (c >= 0x20 && c < 0x7f) ? c : '?';
    }
    return out;
}

std::size_t columns(std::string_view s) noexcept {
    return static_cast<std::size_t>(
        std::count_if(s.begin(), s.end(), [](char c) { return !continuation(c); }));
}

std::string fit(std::string_view s, std::size_t width, bool pad) {
    std::string out;
    const auto have = columns(s);
    if (have <= width) {
        out.assign(s);
        if (pad) out.append(width - have, ' ');
        return out;
    }
    if (width == 0) return out;
    // Keep width - 1 code points, then the cut mark.
    std::size_t kept = 0, i = 0;
    for (; i < s.size(); ++i) {
        if (!continuation(s[i])) {
            if (kept == width - 1) break;
            ++kept;
        }
    }
    out.assign(s.substr(0, i));
    out += '~';
    return out;
}

std::string sparkline(const std::vector<double>& samples, std::size_t width, bool unicode) {
    static constexpr const char* bars[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
    static constexpr char ascii[] = "_.-:=+*#";
    std::string out;
    if (samples.empty() || width == 0) return out;
    const auto n = std::min(samples.size(), width);
    const auto first = samples.end() - static_cast<std::ptrdiff_t>(n);
    const auto [lo, hi] = std::minmax_element(first, samples.end());
    const double range = *hi - *lo;
    for (auto it = first; it != samples.end(); ++it) {
        int level = 0;
        if (range > 0 && std::isfinite(range))
            level = std::clamp(static_cast<int>(std::lround((*it - *lo) / range * 7)), 0, 7);
        if (unicode)
            out += bars[level];
        else
            out += ascii[level];
    }
    return out;
}

std::string format_rtt(std::optional<double> ms) {
    if (!ms || !std::isfinite(*ms) || *ms < 0) return "-";
    if (*ms < 1) return fmt::format("{:.2f}ms", *ms);
    if (*ms < 1000) return fmt::format("{:.1f}ms", *ms);
    return fmt::format("{:.2f}s", *ms / 1000);
}

std::string format_rate(std::optional<double> bytes_per_s) {
    if (!bytes_per_s || !std::isfinite(*bytes_per_s) || *bytes_per_s < 0) return "-";
    double v = *bytes_per_s;
    if (v < 1024) return fmt::format("{:.0f}B/s", v);
    static constexpr const char* units[] = {"K", "M", "G", "T"};
    std::size_t u = 0;
    v /= 1024;
    while (v >= 1024 && u + 1 < std::size(units)) {
        v /= 1024;
        ++u;
    }
    return fmt::format("{:.1f}{}/s", v, units[u]);
}

std::string format_seconds(double s) {
    if (!std::isfinite(s) || s < 0) return "?";
    if (s < 120) return fmt::format("{:.0f}s", s);
    if (s < 7200) return fmt::format("{:.0f}m", s / 60);
    return fmt::format("{:.0f}h", s / 3600);
}

std::string format_prediction(const std::optional<prediction>& p, bool up, bool unicode) {
    if (!up) return "-";
    if (!p) return "stable";
    if (p->in_s < 0.05) return "failing now";
    return fmt::format("fails in ~{} {} {}", format_seconds(p->in_s), unicode ? "±" : "+-",
                       format_seconds(p->error_s));
}

score_class classify_score(std::optional<int> score) noexcept {
    if (!score) return score_class::none;
    if (*score >= 70) return score_class::good;
    if (*score >= 40) return score_class::fair;
    return score_class::poor;
}

std::string describe_event(const nlohmann::json& e) {
    if (!e.is_object()) return "?";
    const auto type = text_of(e, "type");
    if (type == "switch") {
        const auto to = e.value("to", nlohmann::json());
        const auto from = e.value("from", nlohmann::json());
        std::string out =
            to.is_null() ? "switch to none"
                         : fmt::format("switch to {}#{}", text_of(e, "transport"), value_text(to));
        if (!from.is_null()) out += fmt::format(" from #{}", value_text(from));
        if (auto reason = text_of(e, "reason"); !reason.empty()) out += ": " + reason;
        return out;
    }
    if (type == "preferred") {
        const auto t = e.value("transport", nlohmann::json());
        if (t.is_object())
            return fmt::format("preferred {}#{}", text_of(t, "name"), text_of(t, "index"));
    }
    std::string out = type.empty() ? "event" : type;
    for (const auto& [k, v] : e.items()) {
        if (k == "type" || k == "link" || k == "seq" || k == "time_ms") continue;
        out += fmt::format(" {}={}", sanitize(k, 40), value_text(v));
    }
    return out;
}

std::string format_clock(std::int64_t time_ms) {
    const std::time_t t = static_cast<std::time_t>(time_ms / 1000);
    std::tm tm{};
    if (!::localtime_r(&t, &tm)) return "--:--:--";
    return fmt::format("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec);
}

}  // namespace tunnel::ui
