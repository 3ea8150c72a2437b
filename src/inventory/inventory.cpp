#include "inventory/inventory.hpp"

#include <algorithm>
#include <regex>

#include <fmt/format.h>

#include "core/ascii.hpp"
#include "core/glob.hpp"
#include "ssh/ssh_config.hpp"

namespace tunnel::inventory {

namespace {

enum class term_op { add, intersect, exclude };

struct term {
    term_op op = term_op::add;
    std::string text;
    std::optional<std::regex> regex;  // for ~regex terms
};

using core::all_digits;

bool is_glob(std::string_view t) {
    return t.find_first_of("*?") != std::string_view::npos;
}

// "user@host:22" or "[::1]:22" or "host:22" (when 22 names nothing) is one target, not two terms.
bool target_like(std::string_view piece, const inventory& inv) {
    if (piece.find('@') != std::string_view::npos || (!piece.empty() && piece.front() == '['))
        return true;
    auto colon = piece.find(':');
    if (colon == std::string_view::npos || piece.find(':', colon + 1) != std::string_view::npos)
        return false;
    auto port = piece.substr(colon + 1);
    return all_digits(port) && !inv.has_group(port) && !inv.find_host(port);
}

core::result<std::vector<term>> parse_pattern(std::string_view pattern, const inventory& inv) {
    std::vector<std::string> pieces;
    auto split = [](std::string_view s, char sep) {
        std::vector<std::string> out;
        std::size_t start = 0;
        while (true) {
            auto p = s.find(sep, start);
            out.emplace_back(
                s.substr(start, p == std::string_view::npos ? std::string_view::npos : p - start));
            if (p == std::string_view::npos) break;
            start = p + 1;
        }
        return out;
    };
    for (auto& piece : split(pattern, ',')) {
        if (target_like(piece, inv) || piece.rfind('~', 0) == 0) {
            pieces.push_back(piece);
            continue;
        }
        for (auto& part : split(piece, ':')) pieces.push_back(part);
    }
    std::vector<term> terms;
    for (auto& p : pieces) {
        auto b = p.find_first_not_of(" \t");
        if (b == std::string::npos) continue;  // "web," and "a::b" leave empty pieces; skip them
        p = p.substr(b, p.find_last_not_of(" \t") - b + 1);
        term t;
        if (p[0] == '&') t.op = term_op::intersect;
        if (p[0] == '!') t.op = term_op::exclude;
        t.text = t.op == term_op::add ? p : p.substr(1);
        if (t.text.empty())
            return core::fail(
                core::errc::invalid_argument,
                fmt::format("host pattern \"{}\": '{}' needs a name after it, e.g. web:!db",
                            pattern, p));
        if (t.text[0] == '~') {
            try {
                t.regex.emplace(t.text.substr(1));
            } catch (const std::regex_error& e) {
                return core::fail(core::errc::invalid_argument,
                                  fmt::format("host pattern \"{}\": bad regular expression {}: {}",
                                              pattern, t.text.substr(1), e.what()));
            }
        }
        terms.push_back(std::move(t));
    }
    if (terms.empty())
        return core::fail(
            core::errc::invalid_argument,
            fmt::format(
                "empty host pattern \"{}\": use all, a group, a host or a glob such as web*",
                pattern));
    return terms;
}

bool matches(const term& t, const host& h) {
    if (t.text == "all" || t.text == "*") return true;
    if (t.regex) {
        if (std::regex_search(h.name, *t.regex)) return true;
        return std::any_of(h.groups.begin(), h.groups.end(),
                           [&](const std::string& g) { return std::regex_search(g, *t.regex); });
    }
    if (is_glob(t.text)) {
        if (core::glob_match(t.text, h.name)) return true;
        return std::any_of(h.groups.begin(), h.groups.end(), [&](const std::string& g) {
            return g != "all" && core::glob_match(t.text, g);
        });
    }
    return h.name == t.text ||
           std::find(h.groups.begin(), h.groups.end(), t.text) != h.groups.end();
}

bool known(const term& t, const inventory& inv) {
    return t.regex || is_glob(t.text) || t.text == "all" || inv.has_group(t.text) ||
           inv.find_host(t.text);
}

bool selected(const std::vector<term>& terms, const host& h) {
    bool any_add = false, added = false;
    for (const auto& t : terms) {
        switch (t.op) {
            case term_op::add:
                any_add = true;
                added = added || matches(t, h);
                break;
            case term_op::intersect:
                if (!matches(t, h)) return false;
                break;
            case term_op::exclude:
                if (matches(t, h)) return false;
                break;
        }
    }
    return added || !any_add;  // only & and ! terms: start from all hosts
}

core::error unknown_name(std::string_view pattern, const term& t, const inventory& inv) {
    return core::error{
        core::errc::not_found,
        fmt::format("host pattern \"{}\": no host or group named \"{}\" in {} (groups: {})",
                    pattern, t.text, inv.source(), fmt::join(inv.group_names(), ", "))};
}

}  // namespace

const host* inventory::find_host(std::string_view name) const {
    auto it =
        std::find_if(hosts_.begin(), hosts_.end(), [&](const host& h) { return h.name == name; });
    return it == hosts_.end() ? nullptr : &*it;
}

std::vector<std::string> inventory::group_names() const {
    std::vector<std::string> names;
    for (const auto& [name, _] : members_) names.push_back(name);
    return names;
}

std::vector<std::string> inventory::group_hosts(std::string_view name) const {
    std::vector<std::string> out;
    if (auto it = members_.find(std::string(name)); it != members_.end())
        for (auto i : it->second) out.push_back(hosts_[i].name);
    return out;
}

core::result<std::vector<host>> inventory::select(std::string_view pattern,
                                                  unknown_names unknown) const {
    auto terms = parse_pattern(pattern, *this);
    if (!terms) return tl::unexpected(terms.error());
    std::vector<host> out;
    for (const auto& h : hosts_)
        if (selected(*terms, h)) out.push_back(h);
    for (const auto& t : *terms) {
        if (known(t, *this)) continue;
        if (t.op != term_op::add || unknown == unknown_names::error)
            return tl::unexpected(unknown_name(pattern, t, *this));
        // Not in the inventory: a target resolved like exec's ([user@]host[:port] or an ssh_config
        // alias).
        auto target = ssh::parse_target(t.text);
        if (!target)
            return core::fail(
                core::errc::invalid_argument,
                fmt::format(
                    "host pattern \"{}\": \"{}\" is not in {} and is not a valid target: {}",
                    pattern, t.text, source_, target.error().message));
        host h;
        h.name = t.text;
        h.ad_hoc = true;
        bool excluded = false;
        for (const auto& other : *terms)
            if (other.op == term_op::exclude && matches(other, h)) excluded = true;
        if (!excluded &&
            std::none_of(out.begin(), out.end(), [&](const host& x) { return x.name == h.name; }))
            out.push_back(std::move(h));
    }
    return out;
}

core::result<std::vector<host>> inventory::limit(const std::vector<host>& hosts,
                                                 std::string_view pattern) const {
    auto terms = parse_pattern(pattern, *this);
    if (!terms) return tl::unexpected(terms.error());
    for (const auto& t : *terms) {
        if (known(t, *this)) continue;
        // An ad-hoc target already selected may be named in the limit too.
        if (std::any_of(hosts.begin(), hosts.end(),
                        [&](const host& h) { return h.ad_hoc && h.name == t.text; }))
            continue;
        return tl::unexpected(unknown_name(pattern, t, *this));
    }
    std::vector<host> out;
    for (const auto& h : hosts)
        if (selected(*terms, h)) out.push_back(h);
    return out;
}

}  // namespace tunnel::inventory
