// `Host` and `Match` blocks of ssh_config: parsing Match criteria when a file
// is loaded, and deciding whether a block applies to the destination being
// resolved. Internal to src/ssh/ssh_config_*.cpp; not part of the public API.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "ssh/ssh_config_keywords.hpp"

namespace tunnel::ssh::config_match {

// OpenSSH's match_pattern_list (see core::pattern_list_match).
[[nodiscard]] bool match_pattern_list(std::string_view text, std::string_view list, bool fold_case);

// `Match` arguments -> pairs of criterion (maybe "!x") and pattern; refuses
// criteria we do not support with a message listing those we do.
[[nodiscard]] core::result<std::vector<std::string>> parse_match(
    const std::vector<std::string>& args);

// Does a Match block (criteria from parse_match) apply in state `st`?
[[nodiscard]] bool match_matches(const std::vector<std::string>& criteria,
                                 const config_keywords::resolve_state& st);

// Does a Host line (whitespace-separated patterns, `!` excludes) match `alias`?
[[nodiscard]] bool host_matches(const std::vector<std::string>& patterns, std::string_view alias);

}  // namespace tunnel::ssh::config_match
