// OpenSSH's escape sequences over the bytes typed into an interactive
// session: after a newline (or at the very start) the escape character
// (default `~`) followed by `.` disconnects, `?` asks for the help text and a
// second escape character sends one. Any other byte after the escape
// character is sent together with it. A pure state machine: bytes in,
// decisions out, state kept across reads so a sequence may be split.
//
//   shell::escape_filter filter('~');
//   auto step = filter.feed(bytes_read);
//   send(step.forward);
//   if (step.help) print(shell::escape_help('~'));
//   if (step.disconnect) close();
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace tunnel::shell {

struct escape_step {
    std::string forward;      // bytes to send to the remote side, in order
    bool help = false;        // `~?` was typed: show escape_help()
    bool disconnect = false;  // `~.` was typed: close the connection; later input is dropped
};

class escape_filter {
  public:
    // nullopt: escapes are off and every byte is forwarded (ssh -e none).
    explicit escape_filter(std::optional<char> escape_char) : escape_(escape_char) {}

    [[nodiscard]] escape_step feed(std::string_view input);

    // True while an escape character waits for the byte that completes it.
    [[nodiscard]] bool pending() const noexcept { return pending_; }

  private:
    std::optional<char> escape_;
    bool at_line_start_ = true;  // OpenSSH's last_was_cr: the start counts as a new line
    bool pending_ = false;
    bool disconnected_ = false;
};

// The text `~?` prints, with \r\n line ends (the terminal is in raw mode).
[[nodiscard]] std::string escape_help(char escape_char);

// Parses ssh's `-e` argument: "none", one character, or "^X" for a control
// character. Errors say what is accepted.
[[nodiscard]] core::result<std::optional<char>> parse_escape_char(std::string_view text);

// How the escape character is shown to the user: `~`, or `^]` for a control character.
[[nodiscard]] std::string display_escape_char(char escape_char);

}  // namespace tunnel::shell
