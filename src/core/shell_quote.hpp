// Quoting for POSIX sh, used to build the command string an SSH server hands
// to the remote user's shell (exec, sudo, env, cwd, scripts).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tunnel::core {

// Returns `word` so that sh reads it back as exactly one word with exactly
// these bytes, with no expansion of any kind:
//   - non-empty and only [A-Za-z0-9_@%+=:,./-]: returned unchanged;
//   - empty: '' ;
//   - otherwise: wrapped in single quotes, each ' written as '\'' .
// Every byte other than ' is literal inside single quotes (newlines, $,
// backticks, globs, backslashes, UTF-8), so no other escaping is needed.
// Two things quoting cannot change: a NUL byte cannot be passed in an
// argument at all (the caller must refuse it), and a word that starts with
// '-' is still an option to the command that receives it (pass `--`). Also,
// `=` is a safe character, so `NAME=value` in command position is still an
// assignment, exactly as when typed.
[[nodiscard]] std::string shell_quote(std::string_view word);

// shell_quote of each element, separated by single spaces. An empty vector
// gives an empty string.
[[nodiscard]] std::string shell_join(const std::vector<std::string>& words);

// True if `name` is a POSIX environment variable name: [A-Za-z_][A-Za-z0-9_]*.
// Such a name is safe bare in `NAME=value` and `export NAME`.
[[nodiscard]] bool is_valid_env_name(std::string_view name) noexcept;

}  // namespace tunnel::core
