#include "usage/usage_config.hpp"

#include <charconv>

#include <fmt/format.h>

#include "core/duration.hpp"

namespace tunnel::usage {

core::result<std::chrono::hours> parse_retention(std::string_view text) {
    auto bad = [&](std::string_view why) {
        return core::fail(core::errc::invalid_argument,
                          fmt::format("{:?}: {}; write days or hours, e.g. 90d or 36h (at least "
                                      "{}d, at most {}d)",
                                      text.substr(0, 40), why, min_retention.count() / 24,
                                      max_retention.count() / 24));
    };
    std::chrono::hours h{0};
    if (!text.empty() && text.back() == 'd') {
        long long days = 0;
        const auto digits = text.substr(0, text.size() - 1);
        const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), days);
        if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size())
            return bad("not a whole number of days");
        if (days > max_retention.count() / 24) return bad("too long");
        h = std::chrono::hours(days * 24);
    } else {
        auto d = core::parse_duration(text);
        if (!d) return bad("not a duration");
        if (*d % std::chrono::hours(1) != std::chrono::milliseconds(0))
            return bad("not a whole number of hours");
        h = std::chrono::duration_cast<std::chrono::hours>(*d);
    }
    if (h < min_retention) return bad("too short");
    if (h > max_retention) return bad("too long");
    return h;
}

void read_usage_config(core::yaml_reader& r, const YAML::Node& node, const std::string& path,
                       usage_config& out, bool in_cluster) {
    if (!r.expect_map(node, path, {"database", "flush_interval", "retention"})) return;
    out.in_cluster = in_cluster;
    if (!node["database"] && in_cluster) {
        // Kept in the cluster's Redis (docs/cluster.md "Usage analytics").
    } else if (!node["database"])
        r.error(path + ".database",
                "is required: the SQLite file usage is kept in, e.g. /var/lib/tunnel/usage.db "
                "(remove the usage section to turn usage analytics off)");
    else if (auto s = r.string(node["database"], path + ".database")) {
        if (s->empty())
            r.error(path + ".database", "must not be empty");
        else
            out.database = *s;
    }
    if (node["flush_interval"]) {
        const auto p = path + ".flush_interval";
        if (auto d = r.duration(node["flush_interval"], p)) {
            if (*d < min_flush_interval || *d > max_flush_interval)
                r.error(p, fmt::format("must be from {} to {} (got {}): how often counted "
                                       "usage is written to the database",
                                       core::format_duration(min_flush_interval),
                                       core::format_duration(max_flush_interval),
                                       core::format_duration(*d)));
            else
                out.flush_interval = *d;
        }
    }
    if (node["retention"]) {
        const auto p = path + ".retention";
        if (auto s = r.string(node["retention"], p)) {
            if (auto h = parse_retention(*s))
                out.retention = *h;
            else
                r.error(p, h.error().message);
        }
    }
}

std::vector<std::string> describe(const usage_config& c) {
    return {c.in_cluster ? fmt::format("usage.database: {}(not used: usage is kept in the "
                                       "cluster's Redis)",
                                       c.database.empty() ? "" : c.database + " ")
                         : fmt::format("usage.database: {}", c.database),
            fmt::format("usage.flush_interval: {}", core::format_duration(c.flush_interval)),
            fmt::format("usage.retention: {}d{}", c.retention.count() / 24,
                        c.retention.count() % 24 ? fmt::format("{}h", c.retention.count() % 24)
                                                 : std::string())};
}

}  // namespace tunnel::usage
