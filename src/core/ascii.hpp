// ASCII helpers for protocol text (HTTP header names, auth schemes, DNS names,
// ports): locale-independent, unlike std::tolower and std::isdigit.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace tunnel::core {

[[nodiscard]] constexpr char ascii_lower(char c) noexcept {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// Non-empty and only 0-9.
[[nodiscard]] constexpr bool all_digits(std::string_view s) noexcept {
    if (s.empty()) return false;
    for (char c : s)
        if (c < '0' || c > '9') return false;
    return true;
}

// `s` with A-Z folded to a-z.
[[nodiscard]] inline std::string lowercase(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = ascii_lower(c);
    return out;
}

// ASCII case-insensitive equality.
[[nodiscard]] constexpr bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    return true;
}

}  // namespace tunnel::core
