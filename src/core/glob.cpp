#include "core/glob.hpp"

#include <cctype>

namespace tunnel::core {

namespace {
bool same(char a, char b, bool fold) noexcept {
    if (!fold) return a == b;
    return std::tolower(static_cast<unsigned char>(a)) ==
           std::tolower(static_cast<unsigned char>(b));
}
}  // namespace

bool glob_match(std::string_view pattern, std::string_view text, bool fold_case) noexcept {
    // Iterative matcher with single-star backtracking: O(|p|·|t|) worst case, no recursion.
    std::size_t p = 0, t = 0;
    std::size_t star = std::string_view::npos, resume = 0;
    while (t < text.size()) {
        if (p < pattern.size() &&
            (pattern[p] == '?' || (pattern[p] != '*' && same(pattern[p], text[t], fold_case)))) {
            ++p;
            ++t;
        } else if (p < pattern.size() && pattern[p] == '*') {
            star = p++;
            resume = t;
        } else if (star != std::string_view::npos) {
            p = star + 1;
            t = ++resume;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*') ++p;
    return p == pattern.size();
}

bool pattern_list_match(std::string_view list, std::string_view text, bool fold_case) noexcept {
    bool matched = false;
    std::size_t start = 0;
    while (start <= list.size()) {
        auto comma = list.find(',', start);
        if (comma == std::string_view::npos) comma = list.size();
        std::string_view pat = list.substr(start, comma - start);
        const bool negated = !pat.empty() && pat[0] == '!';
        if (negated) pat.remove_prefix(1);
        if (!pat.empty() && glob_match(pat, text, fold_case)) {
            if (negated) return false;
            matched = true;
        }
        start = comma + 1;
    }
    return matched;
}

}  // namespace tunnel::core
