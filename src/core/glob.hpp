// Shell-style wildcard matching shared by ssh_config host patterns,
// command allow/deny rules and inventory patterns.
#pragma once

#include <string_view>

namespace tunnel::core {

// `*` matches any run of characters, `?` one character; everything else is
// literal. Matching is case-sensitive unless `fold_case` is set.
[[nodiscard]] bool glob_match(std::string_view pattern, std::string_view text,
                              bool fold_case = false) noexcept;

}  // namespace tunnel::core
