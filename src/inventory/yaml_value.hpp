// A YAML value as JSON, read the way Ansible (PyYAML, YAML 1.1) reads it:
// yes/no/on/off are booleans, bare numbers are numbers, ~ and null are null,
// quoted scalars stay strings. Inventory variables and --extra-vars files use it.
#pragma once

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

namespace tunnel::inventory {

[[nodiscard]] nlohmann::json yaml_value(const YAML::Node& node);

}  // namespace tunnel::inventory
