#include "relay/ip_allow_list.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

namespace tunnel::relay {

namespace {

using core::errc;

// Input quoted in a message: short and printable.
std::string shown(std::string_view v) {
    std::string out;
    for (char c : v.substr(0, 64)) out += (c >= 0x20 && c < 0x7f && c != '"') ? c : '?';
    if (v.size() > 64) out += "...";
    return out;
}

bool is_v4_mapped(const std::array<std::uint8_t, 16>& b) {
    for (int i = 0; i < 10; ++i)
        if (b[i] != 0) return false;
    return b[10] == 0xff && b[11] == 0xff;
}

// The address in `text` (no prefix); `mapped` says whether it was written as
// an IPv4-mapped IPv6 address (then returned as IPv4).
core::result<ip_address> parse_raw(std::string_view text, bool& mapped) {
    mapped = false;
    auto bad = [&](std::string_view why) {
        return core::fail(errc::invalid_argument,
                          fmt::format("\"{}\" is not an IP address: {}", shown(text), why));
    };
    if (text.size() >= 2 && text.front() == '[' && text.back() == ']')
        text = text.substr(1, text.size() - 2);
    if (text.empty()) return bad("it is empty");
    if (text.size() > 45) return bad("it is too long");
    if (!std::all_of(text.begin(), text.end(), [](char c) {
            return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                   c == '.' || c == ':';
        }))
        return bad(text.find('%') != std::string_view::npos
                       ? "zone ids (%eth0) are not allowed"
                       : "only digits, a-f, '.' and ':' are allowed");
    const std::string z(text);
    ip_address a;
    if (z.find(':') == std::string::npos) {
        in_addr v4{};
        if (::inet_pton(AF_INET, z.c_str(), &v4) != 1)
            return bad("write four decimal numbers 0-255 without leading zeros, e.g. 10.0.0.1");
        std::memcpy(a.bytes.data(), &v4, 4);
        return a;
    }
    in6_addr v6{};
    if (::inet_pton(AF_INET6, z.c_str(), &v6) != 1)
        return bad("not a valid IPv6 address, e.g. 2001:db8::1");
    std::memcpy(a.bytes.data(), &v6, 16);
    if (is_v4_mapped(a.bytes)) {
        mapped = true;
        ip_address v4;
        std::copy(a.bytes.begin() + 12, a.bytes.end(), v4.bytes.begin());
        return v4;
    }
    a.v6 = true;
    return a;
}

// Bits [prefix, width) of `a` are zero.
bool host_bits_clear(const ip_address& a, unsigned prefix) {
    const unsigned width = a.v6 ? 128 : 32;
    for (unsigned bit = prefix; bit < width; ++bit)
        if (a.bytes[bit / 8] & (0x80u >> (bit % 8))) return false;
    return true;
}

ip_address masked(ip_address a, unsigned prefix) {
    const unsigned width = a.v6 ? 128 : 32;
    for (unsigned bit = prefix; bit < width; ++bit)
        a.bytes[bit / 8] = static_cast<std::uint8_t>(a.bytes[bit / 8] & ~(0x80u >> (bit % 8)));
    return a;
}

}  // namespace

std::string ip_address::to_string() const {
    char buf[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof buf);
    return buf;
}

core::result<ip_address> parse_ip_address(std::string_view text) {
    bool mapped = false;
    return parse_raw(text, mapped);
}

bool ip_network::contains(const ip_address& a) const noexcept {
    if (a.v6 != base.v6) return false;
    const unsigned full = prefix / 8;
    if (!std::equal(base.bytes.begin(), base.bytes.begin() + full, a.bytes.begin())) return false;
    if (const unsigned rest = prefix % 8; rest != 0) {
        const auto mask = static_cast<std::uint8_t>(0xff00u >> rest);
        if ((base.bytes[full] & mask) != (a.bytes[full] & mask)) return false;
    }
    return true;
}

std::string ip_network::to_string() const {
    return fmt::format("{}/{}", base.to_string(), prefix);
}

core::result<ip_network> parse_ip_network(std::string_view text) {
    const auto slash = text.find('/');
    const auto addr_text = text.substr(0, slash);
    bool mapped = false;
    auto addr = parse_raw(addr_text, mapped);
    if (!addr)
        return core::fail(errc::invalid_argument,
                          fmt::format("\"{}\": {}", shown(text), addr.error().message));
    ip_network n;
    n.base = *addr;
    const unsigned width = addr->v6 ? 128 : 32;
    const unsigned written_width = mapped ? 128 : width;
    n.prefix = width;
    if (slash != std::string_view::npos) {
        const auto p = text.substr(slash + 1);
        const bool digits =
            !p.empty() && p.size() <= 3 &&
            std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; });
        unsigned value = 0;
        for (char c : digits ? p : std::string_view{}) value = value * 10 + unsigned(c - '0');
        if (!digits || (p.size() > 1 && p.front() == '0') || value > written_width)
            return core::fail(errc::invalid_argument,
                              fmt::format("\"{}\": the prefix length after '/' must be a whole "
                                          "number from 0 to {}",
                                          shown(text), written_width));
        if (mapped) {
            if (value < 96)
                return core::fail(
                    errc::invalid_argument,
                    fmt::format("\"{}\": an IPv4-mapped network needs a prefix of at least /96; "
                                "write the IPv4 network instead (e.g. 10.0.0.0/8)",
                                shown(text)));
            value -= 96;
        }
        n.prefix = value;
    }
    if (!host_bits_clear(n.base, n.prefix))
        return core::fail(errc::invalid_argument,
                          fmt::format("\"{}\": host bits are set below the /{} prefix; did you "
                                      "mean {}?",
                                      shown(text), mapped ? n.prefix + 96 : n.prefix,
                                      ip_network{masked(n.base, n.prefix), n.prefix}.to_string()));
    return n;
}

core::result<ip_allow_list> ip_allow_list::parse(const std::vector<std::string>& cidrs) {
    std::vector<std::string> problems;
    ip_allow_list out;
    if (cidrs.empty())
        problems.push_back(
            "the allow list is empty, which would refuse everyone: list networks, e.g. "
            "10.0.0.0/8, 2001:db8::/32");
    if (cidrs.size() > max_networks)
        problems.push_back(
            fmt::format("{} networks: at most {} are allowed; merge them into "
                        "shorter prefixes",
                        cidrs.size(), max_networks));
    else
        for (const auto& c : cidrs) {
            auto n = parse_ip_network(c);
            if (!n)
                problems.push_back(n.error().message);
            else if (std::find(out.networks_.begin(), out.networks_.end(), *n) ==
                     out.networks_.end())
                out.networks_.push_back(*n);
        }
    if (!problems.empty())
        return core::fail(errc::invalid_argument, fmt::format("{}", fmt::join(problems, "\n")));
    return out;
}

core::result<ip_allow_list> ip_allow_list::parse_list(std::string_view text) {
    std::vector<std::string> items;
    while (!text.empty() && items.size() <= max_networks) {
        auto comma = text.find(',');
        auto item = text.substr(0, comma);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
        if (item.empty())
            return core::fail(errc::invalid_argument,
                              "an empty entry in the list of networks (two commas in a row?)");
        items.emplace_back(item);
        if (comma == std::string_view::npos) break;
        text.remove_prefix(comma + 1);
        if (text.empty())
            return core::fail(errc::invalid_argument, "the list of networks ends with a comma");
    }
    return parse(items);
}

bool ip_allow_list::allows(const ip_address& a) const noexcept {
    return std::any_of(networks_.begin(), networks_.end(),
                       [&](const ip_network& n) { return n.contains(a); });
}

std::string ip_allow_list::to_string() const {
    std::string out;
    for (const auto& n : networks_) {
        if (!out.empty()) out += ',';
        out += n.to_string();
    }
    return out;
}

}  // namespace tunnel::relay
