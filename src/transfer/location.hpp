// scp-style operands: `[user@]host:path` is remote, anything else is local.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace tunnel::transfer {

struct location {
    std::optional<std::string> host;  // "[user@]host" (IPv6 without brackets); nullopt: local
    std::string path;

    [[nodiscard]] bool remote() const noexcept { return host.has_value(); }
    // As the user wrote it, for messages.
    [[nodiscard]] std::string display() const;
};

// Like scp: a ':' before any '/' makes the operand remote; `[v6addr]:path`
// takes brackets; a path starting with '/' or '.' is always local. `host:`
// with no path is refused (say `host:.` for the home directory).
[[nodiscard]] core::result<location> parse_location(std::string_view text);

// The last path component ("a/b/" -> "b"; "/" -> "").
[[nodiscard]] std::string base_name(std::string_view path);
// Everything before the last component ("a/b" -> "a"; "b" -> "."; "/b" -> "/").
[[nodiscard]] std::string dir_name(std::string_view path);
// a + "/" + b without doubling slashes; b is relative.
[[nodiscard]] std::string join_path(std::string_view a, std::string_view b);

// A name from a remote directory listing is safe to create locally only if
// it is one plain component: not empty, not "." or "..", no '/' and no NUL.
[[nodiscard]] bool safe_entry_name(std::string_view name) noexcept;

// True if a symlink at `link_rel` (relative to the copy's root, '/'-separated)
// pointing at `target` would resolve outside that root: absolute targets and
// targets whose ".." climb above the root.
[[nodiscard]] bool link_escapes(std::string_view link_rel, std::string_view target) noexcept;

}  // namespace tunnel::transfer
