// Include/exclude rules with rsync's meaning, for `tunnel sync`:
//   `*` matches within one path component, `**` across components, `?` one
//   character, `[a-z]` a class; a leading `/` anchors the pattern at the
//   sync root; a trailing `/` matches directories only; a pattern without
//   '/' (besides a trailing one) matches the last component at any depth,
//   one with '/' matches the whole relative path (or, unanchored, any tail of
//   it that starts at a component boundary).
// Rules are checked in order: includes first, then excludes; the first
// match decides; no match means included. An excluded directory is not
// descended into (so its contents are neither copied nor deleted).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace tunnel::transfer {

// Glob match with the syntax above ("**" crosses '/'; '*' and '?' do not).
// The pattern must have been checked by validate_glob.
[[nodiscard]] bool path_glob_match(std::string_view pattern, std::string_view text) noexcept;
[[nodiscard]] core::result<void> validate_glob(std::string_view pattern);

class path_filter {
  public:
    [[nodiscard]] static core::result<path_filter> parse(const std::vector<std::string>& includes,
                                                         const std::vector<std::string>& excludes);
    // `rel` is '/'-separated relative to the root, without a leading '/'.
    [[nodiscard]] bool excluded(std::string_view rel, bool is_dir) const;
    [[nodiscard]] bool empty() const noexcept { return rules_.empty(); }

  private:
    struct rule {
        bool include = false;
        bool anchored = false;
        bool dir_only = false;
        bool whole_path = false;  // has a '/' or "**": match against the path, not the name
        std::string pattern;
    };
    [[nodiscard]] static bool matches(const rule& r, std::string_view rel, bool is_dir);
    std::vector<rule> rules_;
};

}  // namespace tunnel::transfer
