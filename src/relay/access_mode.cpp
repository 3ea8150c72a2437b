#include "relay/access_mode.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace tunnel::relay {

namespace {

constexpr access_mode every_mode[] = {access_mode::public_, access_mode::token, access_mode::basic,
                                      access_mode::ip};

// A word quoted in a message: short and printable.
std::string shown(std::string_view v) {
    std::string out;
    for (char c : v.substr(0, 32)) out += (c >= 0x20 && c < 0x7f && c != '"') ? c : '?';
    if (v.size() > 32) out += "...";
    return out;
}

}  // namespace

std::string_view to_string(access_mode mode) noexcept {
    switch (mode) {
        case access_mode::public_:
            return "public";
        case access_mode::token:
            return "token";
        case access_mode::basic:
            return "basic";
        case access_mode::ip:
            return "ip";
    }
    return "?";
}

core::result<access_mode> parse_access_mode(std::string_view text) {
    for (auto m : every_mode)
        if (text == to_string(m)) return m;
    return core::fail(
        core::errc::invalid_argument,
        fmt::format("\"{}\" is not an access mode: use public, token, basic or ip", shown(text)));
}

std::string access_modes::to_string() const {
    std::string out;
    for (auto m : every_mode)
        if (contains(m)) {
            if (!out.empty()) out += ", ";
            out += relay::to_string(m);
        }
    return out.empty() ? "none" : out;
}

core::result<access_modes> parse_access_modes(std::string_view list, std::string_view what) {
    access_modes out;
    while (!list.empty()) {
        auto comma = list.find(',');
        auto item = list.substr(0, comma);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
        if (!item.empty()) {
            auto m = parse_access_mode(item);
            if (!m)
                return core::fail(m.error().code, fmt::format("{}: {}", what, m.error().message));
            out.add(*m);
        }
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    if (out.empty())
        return core::fail(
            core::errc::invalid_argument,
            fmt::format("{}: list at least one access mode (public, token, basic, ip)", what));
    return out;
}

core::result<access_modes> parse_access_claim(const nlohmann::json& claim) {
    auto bad = [] {
        return core::fail(core::errc::invalid_argument,
                          "\"access\" must be a list of 1 to 4 of \"public\", \"token\", "
                          "\"basic\", \"ip\"");
    };
    if (!claim.is_array() || claim.empty() || claim.size() > 4) return bad();
    access_modes out;
    for (const auto& m : claim) {
        if (!m.is_string()) return bad();
        auto mode = parse_access_mode(m.get_ref<const std::string&>());
        if (!mode) return core::fail(mode.error().code, "\"access\": " + mode.error().message);
        out.add(*mode);
    }
    return out;
}

}  // namespace tunnel::relay
