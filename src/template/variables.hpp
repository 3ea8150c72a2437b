// Variables for templates: the host's inventory variables (inventory-wide
// `all` vars < group vars, parent before child < host vars, computed by the
// inventory), then --extra-vars on top; `inventory_hostname` is the host's
// name. Plans add `facts` (ops::facts_json).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace tunnel::templating {

// Reads repeated --extra-vars arguments: `KEY=VALUE` (VALUE is a string) or
// `@FILE` (a YAML or JSON mapping of name: value). Later ones override
// earlier ones. Names are [A-Za-z_][A-Za-z0-9_]*.
[[nodiscard]] core::result<nlohmann::json> parse_extra_vars(const std::vector<std::string>& args);

// One host's variables: `host_vars` with `extra` laid over them (a whole
// value replaces, as Ansible does), and `inventory_hostname`.
[[nodiscard]] nlohmann::json host_variables(const std::string& host,
                                            const nlohmann::json& host_vars,
                                            const nlohmann::json& extra);

}  // namespace tunnel::templating
