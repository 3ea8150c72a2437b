#include "transfer/location.hpp"

#include <vector>

#include <fmt/format.h>

namespace tunnel::transfer {

std::string location::display() const {
    return host ? fmt::format("{}:{}", *host, path) : path;
}

core::result<location> parse_location(std::string_view text) {
    if (text.empty()) return core::fail(core::errc::invalid_argument, "empty path");
    if (text.front() == '/' || text.front() == '.')
        return location{std::nullopt, std::string(text)};
    std::string_view host;
    std::string_view path;
    auto at = text.find('@');
    auto bracket = text.find('[');
    if (bracket != std::string_view::npos &&
        (bracket == 0 || (at != std::string_view::npos && bracket == at + 1))) {
        auto close = text.find("]:", bracket);
        if (close == std::string_view::npos) return location{std::nullopt, std::string(text)};
        host = text.substr(0, close + 1);
        path = text.substr(close + 2);
        std::string h(text.substr(0, bracket));
        h += text.substr(bracket + 1, close - bracket - 1);
        if (path.empty())
            return core::fail(core::errc::invalid_argument,
                              fmt::format("\"{}\" names a host but no path: write {}:PATH (or {}:. "
                                          "for the home directory)",
                                          text, host, host));
        return location{h, std::string(path)};
    }
    auto colon = text.find(':');
    auto slash = text.find('/');
    if (colon == std::string_view::npos || (slash != std::string_view::npos && slash < colon) ||
        colon == 0)
        return location{std::nullopt, std::string(text)};
    host = text.substr(0, colon);
    path = text.substr(colon + 1);
    if (path.empty())
        return core::fail(
            core::errc::invalid_argument,
            fmt::format(
                "\"{}\" names a host but no path: write {}:PATH (or {}:. for the home directory)",
                text, host, host));
    return location{std::string(host), std::string(path)};
}

std::string base_name(std::string_view path) {
    while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
    if (path == "/") return "";
    auto slash = path.rfind('/');
    return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

std::string dir_name(std::string_view path) {
    while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
    auto slash = path.rfind('/');
    if (slash == std::string_view::npos) return ".";
    if (slash == 0) return "/";
    return std::string(path.substr(0, slash));
}

std::string join_path(std::string_view a, std::string_view b) {
    if (a.empty() || a == ".") return std::string(b.empty() ? "." : b);
    if (b.empty()) return std::string(a);
    std::string out(a);
    if (out.back() != '/') out += '/';
    out += b;
    return out;
}

bool safe_entry_name(std::string_view name) noexcept {
    return !name.empty() && name != "." && name != ".." &&
           name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

bool link_escapes(std::string_view link_rel, std::string_view target) noexcept {
    if (target.empty() || target.front() == '/') return true;
    // Depth of the directory holding the link, below the root.
    int depth = 0;
    for (std::size_t i = 0; i < link_rel.size();) {
        auto j = link_rel.find('/', i);
        if (j == std::string_view::npos) break;  // the last component is the link itself
        auto part = link_rel.substr(i, j - i);
        if (part == "..") return true;
        if (!part.empty() && part != ".") ++depth;
        i = j + 1;
    }
    for (std::size_t i = 0; i <= target.size();) {
        auto j = target.find('/', i);
        if (j == std::string_view::npos) j = target.size();
        auto part = target.substr(i, j - i);
        if (part == "..") {
            if (--depth < 0) return true;
        } else if (!part.empty() && part != ".") {
            ++depth;
        }
        i = j + 1;
    }
    return false;
}

}  // namespace tunnel::transfer
