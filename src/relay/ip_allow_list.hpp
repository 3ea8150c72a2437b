// CIDR allow lists for the `ip` visitor access mode: IPv4 and IPv6, parsed
// strictly (no shorthand like "10/8" or "010.0.0.1", no zone ids, no host
// bits set under the prefix), IPv4-mapped IPv6 addresses (::ffff:a.b.c.d)
// treated as the IPv4 address they carry, on both sides. Pure code.
//
//   auto list = relay::ip_allow_list::parse({"10.0.0.0/8", "2001:db8::/32"});
//   list->allows(*relay::parse_ip_address("::ffff:10.1.2.3"));   // true
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace tunnel::relay {

struct ip_address {
    bool v6 = false;
    std::array<std::uint8_t, 16> bytes{};  // IPv4: the first 4
    friend bool operator==(const ip_address&, const ip_address&) = default;
    [[nodiscard]] std::string to_string() const;  // "10.1.2.3", "2001:db8::1"
};

// "10.1.2.3", "2001:db8::1", "::ffff:10.1.2.3" (-> IPv4 10.1.2.3); "[::1]"
// is accepted (brackets as in URLs), zone ids ("fe80::1%eth0") are not.
[[nodiscard]] core::result<ip_address> parse_ip_address(std::string_view text);

struct ip_network {
    ip_address base;
    unsigned prefix = 0;  // 0..32 (IPv4) or 0..128 (IPv6)
    [[nodiscard]] bool contains(const ip_address& a) const noexcept;
    [[nodiscard]] std::string to_string() const;  // "10.0.0.0/8"
    friend bool operator==(const ip_network&, const ip_network&) = default;
};

// "10.0.0.0/8", "2001:db8::/32", a bare address (= /32 or /128),
// "::ffff:10.0.0.0/104" (= 10.0.0.0/8). Bits set below the prefix are an
// error that names the network meant ("10.0.0.1/8: host bits are set; did you
// mean 10.0.0.0/8?").
[[nodiscard]] core::result<ip_network> parse_ip_network(std::string_view text);

class ip_allow_list {
  public:
    static constexpr std::size_t max_networks = 256;

    // Every entry parsed; all problems reported at once, one per line. An
    // empty list is an error (it would refuse everyone: say so instead).
    [[nodiscard]] static core::result<ip_allow_list> parse(const std::vector<std::string>& cidrs);
    // "10.0.0.0/8, 192.168.1.0/24" (comma-separated, spaces allowed).
    [[nodiscard]] static core::result<ip_allow_list> parse_list(std::string_view text);

    ip_allow_list() = default;
    [[nodiscard]] bool allows(const ip_address& a) const noexcept;
    [[nodiscard]] const std::vector<ip_network>& networks() const noexcept { return networks_; }
    [[nodiscard]] bool empty() const noexcept { return networks_.empty(); }
    // "10.0.0.0/8,2001:db8::/32" (canonical forms, the wire format's).
    [[nodiscard]] std::string to_string() const;
    friend bool operator==(const ip_allow_list&, const ip_allow_list&) = default;

  private:
    std::vector<ip_network> networks_;
};

}  // namespace tunnel::relay
