// Shell-style wildcard matching shared by ssh_config host patterns,
// command allow/deny rules and inventory patterns.
#pragma once

#include <string_view>

namespace tunnel::core {

// `*` matches any run of characters, `?` one character; everything else is
// literal. Matching is case-sensitive unless `fold_case` is set.
[[nodiscard]] bool glob_match(std::string_view pattern, std::string_view text,
                              bool fold_case = false) noexcept;

// OpenSSH's pattern lists (match_pattern_list): comma-separated globs, a
// leading `!` negates. True when some positive pattern matches and no negated
// one does. Used by ssh_config Match criteria and known_hosts host fields.
[[nodiscard]] bool pattern_list_match(std::string_view list, std::string_view text,
                                      bool fold_case = false) noexcept;

}  // namespace tunnel::core
