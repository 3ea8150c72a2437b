#include "template/variables.hpp"

#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "inventory/yaml_value.hpp"

namespace tunnel::templating {

namespace {

constexpr std::size_t max_vars_file_bytes = 4u << 20;

bool valid_name(std::string_view n) {
    if (n.empty() || n.size() > 128) return false;
    auto letter = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    };
    if (!letter(n.front())) return false;
    for (char c : n)
        if (!letter(c) && !(c >= '0' && c <= '9')) return false;
    return true;
}

core::result<nlohmann::json> read_vars_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return core::fail(core::errc::not_found,
                          fmt::format("--extra-vars @{}: cannot read the file", path));
    std::ostringstream ss;
    ss << in.rdbuf();
    auto text = ss.str();
    if (text.size() > max_vars_file_bytes)
        return core::fail(
            core::errc::invalid_argument,
            fmt::format("--extra-vars @{}: larger than {} bytes", path, max_vars_file_bytes));
    YAML::Node root;
    try {
        root = YAML::Load(text);  // JSON is YAML too
    } catch (const YAML::Exception& e) {
        return core::fail(core::errc::invalid_argument,
                          fmt::format("--extra-vars @{}:{}:{}: {}", path, e.mark.line + 1,
                                      e.mark.column + 1, e.msg));
    }
    if (!root.IsMap())
        return core::fail(core::errc::invalid_argument,
                          fmt::format("--extra-vars @{}: must be a mapping of name: value", path));
    auto vars = inventory::yaml_value(root);
    for (const auto& [k, v] : vars.items())
        if (!valid_name(k))
            return core::fail(core::errc::invalid_argument,
                              fmt::format("--extra-vars @{}: '{}' is not a variable name "
                                          "(letters, digits and _, not starting with a digit)",
                                          path, k));
    return vars;
}

}  // namespace

core::result<nlohmann::json> parse_extra_vars(const std::vector<std::string>& args) {
    auto out = nlohmann::json::object();
    for (const auto& arg : args) {
        if (!arg.empty() && arg.front() == '@') {
            auto file = read_vars_file(arg.substr(1));
            if (!file) return tl::unexpected(file.error());
            out.update(*file);
            continue;
        }
        auto eq = arg.find('=');
        if (eq == std::string::npos || !valid_name(std::string_view(arg).substr(0, eq)))
            return core::fail(core::errc::invalid_argument,
                              fmt::format("--extra-vars '{}': expected NAME=VALUE (NAME: letters, "
                                          "digits and _) or @FILE (YAML or JSON)",
                                          arg.substr(0, 64)));
        out[arg.substr(0, eq)] = arg.substr(eq + 1);
    }
    return out;
}

nlohmann::json host_variables(const std::string& host, const nlohmann::json& host_vars,
                              const nlohmann::json& extra) {
    auto vars = host_vars.is_object() ? host_vars : nlohmann::json::object();
    vars["inventory_hostname"] = host;
    if (extra.is_object()) vars.update(extra);
    return vars;
}

}  // namespace tunnel::templating
