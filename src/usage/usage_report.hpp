// GET /api/v1/usage (docs/relay.md "Usage analytics"): the query's
// parameters, checked one by one with a message that says how to fix them,
// and the report built from a usage_source (the SQLite usage_store, or rows
// loaded from the cluster's Redis): per-hour rows, totals per
// tenant and name (p95 from the merged latency buckets), and a next-week
// forecast per tenant with its backtest error.
//
//   ?tenant=acme&from=2026-12-01T00:00:00Z&to=1765065600&format=csv
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "usage/usage_source.hpp"

namespace tunnel::usage {

inline constexpr std::int64_t max_range_seconds = 93LL * 24 * 3600;  // ~3 months
inline constexpr std::size_t max_report_rows = 20000;
inline constexpr int forecast_history_days = 28;

enum class report_format { json, csv };

struct usage_query {
    std::string tenant;     // empty: every tenant
    std::int64_t from = 0;  // unix seconds; rows of hours starting from hour_of(from)
    std::int64_t to = 0;    // exclusive
    report_format format = report_format::json;
};

// "1765065600" (unix seconds), "2026-12-06", "2026-12-06T17:00Z",
// "2026-12-06T17:00:00Z", "2026-12-06T18:00:00+01:00".
[[nodiscard]] core::result<std::int64_t> parse_time(std::string_view text);

// Parses the query string (after '?'). Defaults: to = now, from = to - 24 h,
// format json. Refused (invalid_argument, with how to fix it): unknown or
// repeated parameters, a bad tenant, a time that is neither unix seconds nor
// ISO 8601, from >= to, a range over 93 days, an unknown format.
[[nodiscard]] core::result<usage_query> parse_usage_query(std::string_view query, std::int64_t now);

struct usage_answer {
    int status = 200;
    std::string content_type;
    std::string body;
};

// The report for `q` (the forecast looks at the last 28 days before the
// current hour, whatever the range). Errors of the store are 500; too many
// rows is 400 with how to narrow the query.
[[nodiscard]] usage_answer usage_report(usage_source& source, const usage_query& q,
                                        std::int64_t now);

}  // namespace tunnel::usage
