// Strict YAML reading for config files (STYLE 11): every problem is reported
// with its path ("exec.retries: must be a whole number >= 0"), unknown keys
// are errors, and all problems are collected before failing.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "core/error.hpp"

namespace tunnel::core {

// " (line N)" for a node that came from a file; empty for one built in code.
[[nodiscard]] std::string line_of(const YAML::Node& node);

class yaml_reader {
  public:
    explicit yaml_reader(std::string source) : source_(std::move(source)) {}

    // Parses `text`; a syntax error is recorded (with line and column) and an empty node returned.
    YAML::Node parse(std::string_view text);

    // Records an error for every key of `map` not in `allowed`; false if `map` is not a map.
    bool expect_map(const YAML::Node& map, const std::string& path,
                    std::initializer_list<std::string_view> allowed);

    std::optional<std::string> string(const YAML::Node& node, const std::string& path);
    std::optional<long long> integer(const YAML::Node& node, const std::string& path, long long min,
                                     long long max);
    std::optional<std::chrono::milliseconds> duration(const YAML::Node& node,
                                                      const std::string& path);
    std::optional<bool> boolean(const YAML::Node& node, const std::string& path);
    // A finite number > `above` and <= `max`.
    std::optional<double> number(const YAML::Node& node, const std::string& path, double above,
                                 double max);
    std::optional<std::vector<std::string>> string_list(const YAML::Node& node,
                                                        const std::string& path);

    void error(const std::string& path, std::string_view message);
    [[nodiscard]] bool ok() const noexcept { return errors_.empty(); }
    // All problems, one per line, each prefixed with the source name.
    [[nodiscard]] core::error failure() const;

  private:
    std::string source_;
    std::vector<std::string> errors_;
};

}  // namespace tunnel::core
