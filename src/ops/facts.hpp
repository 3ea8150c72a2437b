// What a plan's `when:` conditions and modules know about a host, gathered
// once per host in one round trip (a small POSIX sh script).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace tunnel::ops {

struct facts {
    std::string distro;       // os-release ID: debian, ubuntu, fedora, arch, opensuse-leap, ...
    std::string distro_like;  // os-release ID_LIKE ("" when absent)
    std::string version;      // os-release VERSION_ID
    std::string pkg_manager;  // apt, dnf, yum, pacman, zypper, or "" when none was found
    std::string init_system;  // systemd, or the name of PID 1
    std::string
        firewall;  // ufw, firewalld, nftables, iptables, or none (first found, in that order)
    std::string hostname;
    std::string arch;             // uname -m
    std::string user;             // the login user
    std::uint16_t ssh_port = 22;  // the port this tool's connection uses (known locally)

    // A fact by the name `when:` uses (`facts.NAME`); nullopt for an unknown name.
    [[nodiscard]] std::optional<std::string> get(std::string_view name) const;
    // The names `get` knows, for error messages and docs.
    [[nodiscard]] static const std::vector<std::string_view>& names();
};

// The script that prints `key=value` lines parse_facts reads. Runs without
// root; reads /etc/os-release and looks for tools on PATH (+ /usr/sbin, /sbin).
[[nodiscard]] std::string facts_script();

// Reads the script's output.
[[nodiscard]] core::result<facts> parse_facts(std::string_view output, std::uint16_t ssh_port);

}  // namespace tunnel::ops
