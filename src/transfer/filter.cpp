#include "transfer/filter.hpp"

#include <fmt/format.h>

namespace tunnel::transfer {

namespace {

// Matches a class starting at p[i] == '['; sets `end` past ']'.
bool class_match(std::string_view p, std::size_t i, char c, std::size_t& end) noexcept {
    std::size_t j = i + 1;
    bool negate = j < p.size() && (p[j] == '!' || p[j] == '^');
    if (negate) ++j;
    bool hit = false;
    bool first = true;
    for (; j < p.size() && (p[j] != ']' || first); ++j) {
        first = false;
        if (j + 2 < p.size() && p[j + 1] == '-' && p[j + 2] != ']') {
            if (p[j] <= c && c <= p[j + 2]) hit = true;
            j += 2;
        } else if (p[j] == c) {
            hit = true;
        }
    }
    end = j + 1;
    return hit != negate;
}

bool match_from(std::string_view p, std::string_view t) noexcept {
    std::size_t pi = 0, ti = 0;
    // Backtracking points for the last '*' and '**' seen.
    std::size_t star_p = std::string_view::npos, star_t = 0;
    bool star_crosses = false;
    while (ti < t.size()) {
        if (pi < p.size()) {
            char c = p[pi];
            if (c == '*') {
                bool dbl = pi + 1 < p.size() && p[pi + 1] == '*';
                pi += dbl ? 2 : 1;
                if (dbl) {
                    // "**" is greedy across '/': try the rest at every position.
                    for (std::size_t k = ti; k <= t.size(); ++k)
                        if (match_from(p.substr(pi), t.substr(k))) return true;
                    return false;
                }
                star_p = pi;
                star_t = ti;
                star_crosses = false;
                continue;
            }
            if (c == '?' && t[ti] != '/') {
                ++pi;
                ++ti;
                continue;
            }
            if (c == '[') {
                std::size_t end = 0;
                if (t[ti] != '/' && class_match(p, pi, t[ti], end)) {
                    pi = end;
                    ++ti;
                    continue;
                }
            } else if (c == '\\' && pi + 1 < p.size() && p[pi + 1] == t[ti]) {
                pi += 2;
                ++ti;
                continue;
            } else if (c != '?' && c == t[ti]) {
                ++pi;
                ++ti;
                continue;
            }
        }
        // Mismatch: let the last '*' eat one more character (never a '/').
        if (star_p != std::string_view::npos && (star_crosses || t[star_t] != '/')) {
            pi = star_p;
            ti = ++star_t;
            continue;
        }
        return false;
    }
    while (pi < p.size() && p[pi] == '*') ++pi;
    return pi == p.size();
}

}  // namespace

core::result<void> validate_glob(std::string_view pattern) {
    if (pattern.empty()) return core::fail(core::errc::invalid_argument, "empty glob pattern");
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        if (pattern[i] == '\\') {
            ++i;
            continue;
        }
        if (pattern[i] == '[') {
            std::size_t j = i + 1;
            if (j < pattern.size() && (pattern[j] == '!' || pattern[j] == '^')) ++j;
            if (j < pattern.size() && pattern[j] == ']') ++j;
            while (j < pattern.size() && pattern[j] != ']') ++j;
            if (j >= pattern.size())
                return core::fail(
                    core::errc::invalid_argument,
                    fmt::format("invalid glob \"{}\": '[' at position {} is never closed", pattern,
                                i + 1));
            i = j;
        }
    }
    return {};
}

bool path_glob_match(std::string_view pattern, std::string_view text) noexcept {
    return match_from(pattern, text);
}

core::result<path_filter> path_filter::parse(const std::vector<std::string>& includes,
                                             const std::vector<std::string>& excludes) {
    path_filter f;
    auto add = [&](const std::string& text, bool include) -> core::result<void> {
        if (auto v = validate_glob(text); !v) return v;
        rule r;
        r.include = include;
        std::string_view p = text;
        if (p.size() > 1 && p.back() == '/') {
            r.dir_only = true;
            p.remove_suffix(1);
        }
        if (!p.empty() && p.front() == '/') {
            r.anchored = true;
            p.remove_prefix(1);
        }
        if (p.empty())
            return core::fail(core::errc::invalid_argument,
                              fmt::format("invalid glob \"{}\"", text));
        r.whole_path = r.anchored || p.find('/') != std::string_view::npos ||
                       p.find("**") != std::string_view::npos;
        r.pattern = std::string(p);
        f.rules_.push_back(std::move(r));
        return {};
    };
    for (const auto& p : includes)
        if (auto r = add(p, true); !r) return tl::unexpected(r.error());
    for (const auto& p : excludes)
        if (auto r = add(p, false); !r) return tl::unexpected(r.error());
    return f;
}

bool path_filter::matches(const rule& r, std::string_view rel, bool is_dir) {
    if (r.dir_only && !is_dir) return false;
    if (!r.whole_path) {
        auto slash = rel.rfind('/');
        return path_glob_match(r.pattern,
                               slash == std::string_view::npos ? rel : rel.substr(slash + 1));
    }
    if (r.anchored) return path_glob_match(r.pattern, rel);
    // Unanchored with '/': any tail of the path starting at a component.
    for (std::size_t i = 0;;) {
        if (path_glob_match(r.pattern, rel.substr(i))) return true;
        auto slash = rel.find('/', i);
        if (slash == std::string_view::npos) return false;
        i = slash + 1;
    }
}

bool path_filter::excluded(std::string_view rel, bool is_dir) const {
    for (const auto& r : rules_)
        if (matches(r, rel, is_dir)) return !r.include;
    return false;
}

}  // namespace tunnel::transfer
