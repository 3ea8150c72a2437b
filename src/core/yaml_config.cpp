#include "core/yaml_config.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "core/duration.hpp"

namespace tunnel::core {

std::string line_of(const YAML::Node& node) {
    const auto m = node.Mark();
    if (m.line < 0) return {};
    return fmt::format(" (line {})", m.line + 1);
}

YAML::Node yaml_reader::parse(std::string_view text) {
    try {
        return YAML::Load(std::string(text));
    } catch (const YAML::Exception& e) {
        errors_.push_back(fmt::format("{}:{}:{}: invalid YAML: {}", source_, e.mark.line + 1,
                                      e.mark.column + 1, e.msg));
        return {};
    }
}

void yaml_reader::error(const std::string& path, std::string_view message) {
    errors_.push_back(fmt::format("{}: {}: {}", source_, path, message));
}

bool yaml_reader::expect_map(const YAML::Node& map, const std::string& path,
                             std::initializer_list<std::string_view> allowed) {
    if (!map || map.IsNull()) return false;
    if (!map.IsMap()) {
        error(path, "must be a mapping of key: value" + line_of(map));
        return false;
    }
    for (const auto& kv : map) {
        auto key = kv.first.as<std::string>();
        if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
            error(path.empty() ? key : path + "." + key,
                  fmt::format("unknown key{} (allowed: {})", line_of(kv.first),
                              fmt::join(allowed, ", ")));
    }
    return true;
}

std::optional<std::string> yaml_reader::string(const YAML::Node& node, const std::string& path) {
    if (!node.IsScalar()) {
        error(path, "must be a string" + line_of(node));
        return std::nullopt;
    }
    return node.as<std::string>();
}

std::optional<long long> yaml_reader::integer(const YAML::Node& node, const std::string& path,
                                              long long min, long long max) {
    long long v = 0;
    if (!node.IsScalar() || !YAML::convert<long long>::decode(node, v) || v < min || v > max) {
        error(path, fmt::format("must be a whole number from {} to {}{}", min, max, line_of(node)));
        return std::nullopt;
    }
    return v;
}

std::optional<std::chrono::milliseconds> yaml_reader::duration(const YAML::Node& node,
                                                               const std::string& path) {
    auto s = string(node, path);
    if (!s) return std::nullopt;
    auto d = parse_duration(*s);
    if (!d) {
        error(path, d.error().message + line_of(node));
        return std::nullopt;
    }
    return *d;
}

std::optional<bool> yaml_reader::boolean(const YAML::Node& node, const std::string& path) {
    bool v = false;
    if (!node.IsScalar() || !YAML::convert<bool>::decode(node, v)) {
        error(path, "must be true or false" + line_of(node));
        return std::nullopt;
    }
    return v;
}

std::optional<double> yaml_reader::number(const YAML::Node& node, const std::string& path,
                                          double above, double max) {
    double v = 0;
    if (!node.IsScalar() || !YAML::convert<double>::decode(node, v) || !std::isfinite(v) ||
        v <= above || v > max) {
        error(path, fmt::format("must be a number > {} and <= {}{}", above, max, line_of(node)));
        return std::nullopt;
    }
    return v;
}

std::optional<std::vector<std::string>> yaml_reader::string_list(const YAML::Node& node,
                                                                 const std::string& path) {
    if (!node.IsSequence()) {
        error(path, "must be a list" + line_of(node));
        return std::nullopt;
    }
    std::vector<std::string> out;
    for (std::size_t i = 0; i < node.size(); ++i)
        if (auto s = string(node[i], fmt::format("{}[{}]", path, i))) out.push_back(*s);
    return out;
}

core::error yaml_reader::failure() const {
    return {errc::invalid_argument, fmt::format("{}", fmt::join(errors_, "\n"))};
}

}  // namespace tunnel::core
