#include "shell/escape_filter.hpp"

#include <fmt/format.h>

#include "core/log_text.hpp"

namespace tunnel::shell {

escape_step escape_filter::feed(std::string_view input) {
    escape_step step;
    if (disconnected_) return step;
    if (!escape_) {
        step.forward.assign(input);
        return step;
    }
    const char esc = *escape_;
    for (const char ch : input) {
        if (pending_) {
            pending_ = false;
            if (ch == '.') {
                step.disconnect = true;
                disconnected_ = true;
                return step;
            }
            if (ch == '?') {
                step.help = true;
                continue;  // still at the start of a line, as in OpenSSH
            }
            if (ch != esc) step.forward.push_back(esc);  // not an escape: send both
            // `~~` falls through and sends one escape character.
        } else if (at_line_start_ && ch == esc) {
            pending_ = true;
            continue;
        }
        at_line_start_ = ch == '\r' || ch == '\n';
        step.forward.push_back(ch);
    }
    return step;
}

std::string display_escape_char(char escape_char) {
    const auto c = static_cast<unsigned char>(escape_char);
    if (c < 0x20) return fmt::format("^{}", static_cast<char>(c + '@'));
    if (c == 0x7f) return "^?";
    return std::string(1, escape_char);
}

std::string escape_help(char escape_char) {
    const std::string e = display_escape_char(escape_char);
    return fmt::format(
        "Supported escape sequences:\r\n"
        " {0}.   - terminate connection\r\n"
        " {0}?   - this message\r\n"
        " {0}{0}   - send the escape character by typing it twice\r\n"
        "(Note that escapes are only recognized immediately after newline.)\r\n",
        e);
}

core::result<std::optional<char>> parse_escape_char(std::string_view text) {
    if (text == "none") return std::optional<char>{};
    if (text.size() == 1) {
        const auto c = static_cast<unsigned char>(text[0]);
        if (c >= 0x80)
            return core::fail(core::errc::invalid_argument,
                              fmt::format("-e: byte 0x{:02x} is not ASCII; use one character such "
                                          "as ~, ^X for a control character, or none",
                                          static_cast<unsigned>(c)));
        return std::optional<char>{text[0]};
    }
    if (text.size() == 2 && text[0] == '^') {
        const auto c = static_cast<unsigned char>(text[1]);
        if (c == '?') return std::optional<char>{'\x7f'};  // DEL, as stty writes it
        // As ssh: ^@ .. ^_ and their lower-case forms name control characters.
        if (c >= 64 && c < 128) return std::optional<char>{static_cast<char>(c & 0x1f)};
    }
    return core::fail(
        core::errc::invalid_argument,
        fmt::format("-e \"{}\": expected one character (e.g. -e '#'), ^X for a "
                    "control character (e.g. -e '^]'), or -e none to turn escapes off",
                    core::log_text(text, 32)));
}

}  // namespace tunnel::shell
