// Unified diffs of small text files (configs), as `diff -u` prints them.
#pragma once

#include <string>
#include <string_view>

namespace tunnel::ops {

// "" when equal. `old_name`/`new_name` label the ---/+++ lines. Files of
// more than max_lines lines are summarised instead of diffed.
[[nodiscard]] std::string unified_diff(std::string_view old_text, std::string_view new_text,
                                       std::string_view old_name, std::string_view new_name,
                                       int context = 3);

inline constexpr std::size_t diff_max_lines = 5000;

}  // namespace tunnel::ops
