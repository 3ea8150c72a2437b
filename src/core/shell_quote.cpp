#include "core/shell_quote.hpp"

#include <algorithm>

namespace tunnel::core {

namespace {

bool is_alpha(char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}
bool is_digit(char c) noexcept {
    return c >= '0' && c <= '9';
}

bool is_safe(char c) noexcept {
    if (is_alpha(c) || is_digit(c)) return true;
    switch (c) {
        case '_':
        case '@':
        case '%':
        case '+':
        case '=':
        case ':':
        case ',':
        case '.':
        case '/':
        case '-':
            return true;
        default:
            return false;
    }
}

}  // namespace

std::string shell_quote(std::string_view word) {
    if (!word.empty() && std::all_of(word.begin(), word.end(), is_safe)) {
        return std::string(word);
    }
    std::string out;
    out.reserve(word.size() + 2);
    out += '\'';
    for (char c : word) {
        if (c == '\'')
            out += "'\\''";
        else
            out += c;
    }
    out += '\'';
    return out;
}

std::string shell_join(const std::vector<std::string>& words) {
    std::string out;
    for (const auto& word : words) {
        if (!out.empty()) out += ' ';  // shell_quote never returns ""
        out += shell_quote(word);
    }
    return out;
}

bool is_valid_env_name(std::string_view name) noexcept {
    if (name.empty() || !(is_alpha(name.front()) || name.front() == '_')) return false;
    return std::all_of(name.begin() + 1, name.end(),
                       [](char c) { return is_alpha(c) || is_digit(c) || c == '_'; });
}

}  // namespace tunnel::core
