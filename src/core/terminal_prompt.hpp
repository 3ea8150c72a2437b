// Asking the user for a secret: from the controlling terminal with echo off,
// else through an SSH_ASKPASS program (OpenSSH's rules). Never from argv.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tunnel::core {

// nullopt when there is no terminal and no askpass program to ask.
[[nodiscard]] std::optional<std::string> ask_secret(std::string_view prompt);

// Writes `prompt` to the controlling terminal and reads one line, showing
// what is typed when `echo`. nullopt when there is no terminal.
[[nodiscard]] std::optional<std::string> ask_terminal(std::string_view prompt, bool echo);

// Writes `text` to the controlling terminal; false when there is none.
bool tell_terminal(std::string_view text);

}  // namespace tunnel::core
