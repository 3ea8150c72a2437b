#include "usage/usage_report.hpp"

#include <charconv>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/utc_time.hpp"
#include "usage/holt_forecast.hpp"

namespace tunnel::usage {

namespace {

using core::errc;

core::error bad(std::string message) {
    return {errc::invalid_argument, std::move(message)};
}

// Days since 1970-01-01 of a civil date (proleptic Gregorian).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
    if (pos + n > s.size()) return false;
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    out = v;
    return true;
}

std::string percent_decode(std::string_view s, bool& ok) {
    std::string out;
    ok = true;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '+') {
            out += ' ';
        } else if (s[i] == '%') {
            auto hex = [](char c) {
                if (c >= '0' && c <= '9') return c - '0';
                if (c >= 'a' && c <= 'f') return c - 'a' + 10;
                if (c >= 'A' && c <= 'F') return c - 'A' + 10;
                return -1;
            };
            const int hi = i + 1 < s.size() ? hex(s[i + 1]) : -1;
            const int lo = i + 2 < s.size() ? hex(s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                ok = false;
                return out;
            }
            out += static_cast<char>(hi * 16 + lo);
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

// What goes back into a message: short and printable.
std::string shown(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 64)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
    return out;
}

bool valid_tenant(std::string_view t) {
    if (t.empty() || t.size() > 63 || t.front() == '-' || t.back() == '-') return false;
    if (t.find("--") != std::string_view::npos) return false;
    for (char c : t)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    return true;
}

std::string iso(std::int64_t unix_seconds) {
    return core::utc_iso8601(
        std::chrono::system_clock::time_point(std::chrono::seconds(unix_seconds)));
}

void p95_json(const latency_histogram& h, nlohmann::json& out) {
    const auto p = percentile(h, 0.95);
    auto round3 = [](double v) { return std::round(v * 1000) / 1000; };
    if (!p) {
        out["p95_ms"] = nullptr;
        out["p95_range_ms"] = nullptr;
    } else {
        out["p95_ms"] = round3(p->ms);
        out["p95_range_ms"] = {round3(p->low_ms), round3(p->high_ms)};
    }
}

nlohmann::json counts_json(const usage_counts& c) {
    nlohmann::json j{{"requests", c.requests},
                     {"bytes_in", c.bytes_in},
                     {"bytes_out", c.bytes_out},
                     {"tunnel_hours", std::round(static_cast<double>(c.tunnel_ms) / 3.6) / 1e6},
                     {"errors", c.errors}};
    p95_json(c.latency, j);
    return j;
}

std::string csv_field(std::string_view s) {
    if (s.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(s);
    std::string out = "\"";
    for (char c : s) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + "\"";
}

std::string csv_line(std::string_view hour, const usage_key& k, const usage_counts& c) {
    const auto p = percentile(c.latency, 0.95);
    return fmt::format("{},{},{},{},{},{},{:.6f},{},{}\r\n", hour, csv_field(k.tenant),
                       csv_field(k.name), c.requests, c.bytes_in, c.bytes_out,
                       static_cast<double>(c.tunnel_ms) / 3'600'000.0, c.errors,
                       p ? fmt::format("{:.3f}", p->ms) : std::string());
}

double round1(double v) {
    return std::round(v * 10) / 10;
}

nlohmann::json forecast_json(usage_source& store, const std::string& tenant, std::int64_t now,
                             std::string& failure) {
    const std::int64_t end = hour_of(now);  // complete hours only
    const std::int64_t start = end - std::int64_t{forecast_history_days} * 24 * seconds_per_hour;
    auto by_hour = store.requests_by_hour(tenant, start, end);
    if (!by_hour) {
        failure = by_hour.error().message;
        return {};
    }
    std::vector<double> series;
    if (!by_hour->empty())
        for (std::int64_t h = by_hour->begin()->first; h < end; h += seconds_per_hour) {
            const auto it = by_hour->find(h);
            series.push_back(it == by_hour->end() ? 0.0 : static_cast<double>(it->second));
        }
    const auto f = forecast_load(series);
    nlohmann::json j{{"tenant", tenant},
                     {"history_hours", f.history_hours},
                     {"horizon_hours", forecast_horizon_hours}};
    if (!f.enough_history) {
        j["status"] = "insufficient history";
        j["needed_hours"] = min_history_hours;
        return j;
    }
    j["status"] = "ok";
    j["requests_next_7d"] = std::llround(f.total);
    j["plus_minus"] = std::llround(f.plus_minus);
    j["error_metric"] =
        fmt::format("backtest MAE per hour over the held-out last {} h, times the 168 h horizon",
                    f.backtest.holdout_hours);
    nlohmann::json bt{{"holdout_hours", f.backtest.holdout_hours},
                      {"mae_per_hour", round1(f.backtest.mae)},
                      {"rmse_per_hour", round1(f.backtest.rmse)}};
    bt["total_error_pct"] =
        f.backtest.total_error_pct ? nlohmann::json(round1(*f.backtest.total_error_pct)) : nullptr;
    j["backtest"] = bt;
    j["model"] = {{"method", "holt-linear"}, {"alpha", f.model.alpha}, {"beta", f.model.beta}};
    return j;
}

}  // namespace

core::result<std::int64_t> parse_time(std::string_view s) {
    auto fail = [&](std::string_view why) {
        return tl::unexpected(
            bad(fmt::format("{:?}: {}; write unix seconds (1765065600) or ISO 8601 in UTC "
                            "(2026-12-06T17:00:00Z, 2026-12-06)",
                            shown(s), why)));
    };
    if (s.empty()) return fail("empty");
    if (s.find_first_not_of("0123456789") == std::string_view::npos) {
        if (s.size() > 11) return fail("too large");
        std::int64_t v = 0;
        std::from_chars(s.data(), s.data() + s.size(), v);
        if (v > 253402300799) return fail("after the year 9999");
        return v;
    }
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
    if (!digits(s, 0, 4, y) || s.size() < 10 || s[4] != '-' || !digits(s, 5, 2, mo) ||
        s[7] != '-' || !digits(s, 8, 2, d))
        return fail("not a date");
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31) return fail("no such date");
    static constexpr int month_days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > month_days[mo - 1] || (mo == 2 && d == 29 && !leap)) return fail("no such date");
    std::size_t pos = 10;
    int offset = 0;  // seconds east of UTC
    if (pos < s.size()) {
        if (s[pos] != 'T' && s[pos] != 't') return fail("expected 'T' after the date");
        if (!digits(s, pos + 1, 2, h) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
            !digits(s, pos + 4, 2, mi))
            return fail("expected HH:MM after 'T'");
        pos += 6;
        if (pos < s.size() && s[pos] == ':') {
            if (!digits(s, pos + 1, 2, sec)) return fail("expected seconds after HH:MM:");
            pos += 3;
        }
        if (h > 23 || mi > 59 || sec > 60) return fail("no such time of day");
        if (pos >= s.size()) return fail("no time zone (add Z for UTC)");
        if (s[pos] == 'Z' || s[pos] == 'z') {
            ++pos;
        } else if (s[pos] == '+' || s[pos] == '-') {
            int oh = 0, om = 0;
            if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
                !digits(s, pos + 4, 2, om) || oh > 23 || om > 59)
                return fail("a zone offset is +HH:MM or -HH:MM");
            offset = (oh * 3600 + om * 60) * (s[pos] == '-' ? -1 : 1);
            pos += 6;
        } else {
            return fail("no time zone (add Z for UTC)");
        }
        if (pos != s.size()) return fail("unexpected text after the time");
    }
    return days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 +
           h * 3600 + mi * 60 + std::min(sec, 59) - offset;
}

core::result<usage_query> parse_usage_query(std::string_view query, std::int64_t now) {
    usage_query q;
    if (query.size() > 1024)
        return tl::unexpected(
            bad("the query string is over 1024 bytes; the parameters are "
                "tenant, from, to and format"));
    std::set<std::string> seen;
    std::optional<std::int64_t> from, to;
    std::size_t start = 0;
    while (start <= query.size() && !query.empty()) {
        const auto amp = query.find('&', start);
        const auto part = query.substr(start, amp == std::string_view::npos ? amp : amp - start);
        start = amp == std::string_view::npos ? query.size() + 1 : amp + 1;
        if (part.empty()) continue;
        const auto eq = part.find('=');
        bool ok_key = true, ok_value = true;
        const std::string key = percent_decode(part.substr(0, eq), ok_key);
        const std::string value = eq == std::string_view::npos
                                      ? std::string()
                                      : percent_decode(part.substr(eq + 1), ok_value);
        if (!ok_key || !ok_value)
            return tl::unexpected(bad(fmt::format(
                "{:?}: a broken percent-escape (write %XX with two hex digits)", shown(part))));
        if (key != "tenant" && key != "from" && key != "to" && key != "format")
            return tl::unexpected(bad(
                fmt::format("unknown parameter {:?}: use tenant, from, to and format (json or csv)",
                            shown(key))));
        if (!seen.insert(key).second)
            return tl::unexpected(bad(fmt::format("{} is given twice: give it once", key)));
        if (key == "tenant") {
            if (!value.empty() && !valid_tenant(value))
                return tl::unexpected(bad(fmt::format(
                    "tenant {:?}: a tenant is 1 to 63 characters of a-z, 0-9 and '-' (not at "
                    "either end, no \"--\"); leave it out for every tenant",
                    shown(value))));
            q.tenant = value;
        } else if (key == "format") {
            if (value == "json" || value.empty())
                q.format = report_format::json;
            else if (value == "csv")
                q.format = report_format::csv;
            else
                return tl::unexpected(
                    bad(fmt::format("format {:?}: use format=json or format=csv", shown(value))));
        } else {
            auto t = parse_time(value);
            if (!t) return tl::unexpected(bad(fmt::format("{}: {}", key, t.error().message)));
            (key == "from" ? from : to) = *t;
        }
    }
    q.to = to.value_or(now);
    q.from = from.value_or(q.to - 24 * seconds_per_hour);
    if (q.from >= q.to)
        return tl::unexpected(
            bad(fmt::format("from ({}) must be before to ({})", iso(q.from), iso(q.to))));
    if (q.to - q.from > max_range_seconds)
        return tl::unexpected(bad(fmt::format(
            "the range from {} to {} is over {} days: ask for a shorter one (several queries "
            "for longer periods)",
            iso(q.from), iso(q.to), max_range_seconds / 86400)));
    return q;
}

usage_answer usage_report(usage_source& store, const usage_query& q, std::int64_t now) {
    auto error = [](int status, std::string_view code, std::string_view message) {
        return usage_answer{status, "application/json",
                            nlohmann::json{{"error", code}, {"message", message}}.dump() + "\n"};
    };
    auto rows = store.rows(q.tenant, q.from, q.to, max_report_rows);
    if (!rows) return error(500, "usage_store", rows.error().message);
    if (rows->size() > max_report_rows)
        return error(400, "too_many_rows",
                     fmt::format("more than {} hourly rows: narrow the range (from, to) or ask "
                                 "for one tenant",
                                 max_report_rows));
    std::map<std::pair<std::string, std::string>, usage_counts> per_name;
    usage_counts all;
    std::set<std::string> tenants;
    for (const auto& r : *rows) {
        per_name[{r.key.tenant, r.key.name}].merge(r.counts);
        all.merge(r.counts);
        tenants.insert(r.key.tenant);
    }
    if (!q.tenant.empty()) tenants.insert(q.tenant);

    if (q.format == report_format::csv) {
        std::string out =
            "hour,tenant,name,requests,bytes_in,bytes_out,tunnel_hours,errors,p95_ms\r\n";
        for (const auto& r : *rows) out += csv_line(iso(r.key.hour), r.key, r.counts);
        for (const auto& [k, c] : per_name) out += csv_line("total", {k.first, k.second, 0}, c);
        return {200, "text/csv; charset=utf-8", std::move(out)};
    }
    nlohmann::json j;
    j["from"] = iso(hour_of(q.from));
    j["to"] = iso(q.to);
    j["tenant"] = q.tenant.empty() ? nlohmann::json(nullptr) : nlohmann::json(q.tenant);
    nlohmann::json list = nlohmann::json::array();
    for (const auto& r : *rows) {
        auto row = counts_json(r.counts);
        row["hour"] = iso(r.key.hour);
        row["tenant"] = r.key.tenant;
        row["name"] = r.key.name;
        list.push_back(std::move(row));
    }
    j["rows"] = std::move(list);
    nlohmann::json totals = nlohmann::json::array();
    for (const auto& [k, c] : per_name) {
        auto t = counts_json(c);
        t["tenant"] = k.first;
        t["name"] = k.second;
        totals.push_back(std::move(t));
    }
    j["totals"] = std::move(totals);
    j["total"] = counts_json(all);
    nlohmann::json forecasts = nlohmann::json::array();
    for (const auto& t : tenants) {
        std::string failure;
        auto f = forecast_json(store, t, now, failure);
        if (!failure.empty()) return error(500, "usage_store", failure);
        forecasts.push_back(std::move(f));
    }
    j["forecasts"] = std::move(forecasts);
    j["definitions"] = {
        {"errors", "requests answered with a status >= 500 (by the origin or the relay)"},
        {"bytes_in", "bytes from callers to the origin (request heads and bodies)"},
        {"bytes_out", "bytes from the origin to callers (response heads and bodies)"},
        {"p95_ms",
         "95th percentile latency from merged histogram buckets; the true value lies "
         "in p95_range_ms"},
        {"forecast",
         "Holt's linear trend on hourly requests of the last 28 days; plus_minus is "
         "the backtest MAE per hour times 168 h"}};
    return {200, "application/json",
            j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"};
}

}  // namespace tunnel::usage
