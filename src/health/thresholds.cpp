#include "health/thresholds.hpp"

#include <cmath>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/yaml_config.hpp"

namespace tunnel::health {

namespace {

constexpr std::size_t max_file = 64 * 1024;

// A percentage from 0 to 100 (0 is a real limit: "any use at all").
std::optional<double> percent(core::yaml_reader& r, const YAML::Node& node,
                              const std::string& key) {
    double v = 0;
    if (!node.IsScalar() || !YAML::convert<double>::decode(node, v) || !std::isfinite(v) || v < 0 ||
        v > 100) {
        r.error(key,
                fmt::format("must be a percentage from 0 to 100 (line {})", node.Mark().line + 1));
        return std::nullopt;
    }
    return v;
}

}  // namespace

core::result<thresholds> parse_thresholds(std::string_view text, const std::string& source) {
    core::yaml_reader r(source);
    auto root = r.parse(text);
    thresholds t;
    if (!r.ok()) return tl::unexpected(r.failure());
    if (!root || root.IsNull()) return t;  // an empty file: the defaults
    if (!r.expect_map(root, "",
                      {"load_per_cpu", "memory_available_min", "disk_used_max", "failed_units_max",
                       "clock_skew_max"}))
        return tl::unexpected(r.failure());
    if (auto n = root["load_per_cpu"])
        if (auto v = r.number(n, "load_per_cpu", 0, 1e6)) t.load_per_cpu = *v;
    if (auto n = root["memory_available_min"])
        if (auto v = percent(r, n, "memory_available_min")) t.memory_available_min = *v;
    if (auto n = root["disk_used_max"])
        if (auto v = percent(r, n, "disk_used_max")) t.disk_used_max = *v;
    if (auto n = root["failed_units_max"])
        if (auto v = r.integer(n, "failed_units_max", 0, 1'000'000))
            t.failed_units_max = static_cast<std::size_t>(*v);
    if (auto n = root["clock_skew_max"]) {
        if (auto v = r.duration(n, "clock_skew_max")) {
            if (v->count() <= 0)
                r.error("clock_skew_max",
                        fmt::format("must be more than 0, e.g. 500ms or 2s (line {})",
                                    n.Mark().line + 1));
            else
                t.clock_skew_max = *v;
        }
    }
    if (!r.ok()) return tl::unexpected(r.failure());
    return t;
}

core::result<thresholds> load_thresholds(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return core::fail(core::errc::not_found,
                          fmt::format("--thresholds {}: cannot read it (does it exist?)", path));
    std::string text(max_file + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(in.gcount()));
    if (text.size() > max_file)
        return core::fail(core::errc::invalid_argument,
                          fmt::format("--thresholds {}: larger than {} KiB; a thresholds file is a "
                                      "few lines",
                                      path, max_file / 1024));
    return parse_thresholds(text, path);
}

}  // namespace tunnel::health
