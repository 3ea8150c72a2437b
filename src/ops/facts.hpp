// What a plan's `when:` conditions and modules know about a host, gathered
// once per host in one round trip (a small POSIX sh script).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

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
    std::string arch;  // uname -m
    std::string user;  // the login user
    // The port sshd accepted this connection on: the 4th field of the login's
    // $SSH_CONNECTION, which behind NAT or a port forward differs from the
    // port dialled; the dialled port when the host does not say.
    std::uint16_t ssh_port = 22;
    std::uint16_t dialled_port = 22;  // the port this tool connected to (known locally)

    // A fact by the name `when:` uses (`facts.NAME`); nullopt for an unknown name.
    [[nodiscard]] std::optional<std::string> get(std::string_view name) const;
    // The names `get` knows, for error messages and docs.
    [[nodiscard]] static const std::vector<std::string_view>& names();
};

// The facts as template variables: {"distro": "debian", ..., "ssh_port": "22"}
// (every name facts::names() lists, as text).
[[nodiscard]] nlohmann::json facts_json(const facts& f);

// The script that prints `key=value` lines parse_facts reads. Runs without
// root; reads /etc/os-release, looks for tools on PATH (+ /usr/sbin, /sbin)
// and prints $SSH_CONNECTION.
[[nodiscard]] std::string facts_script();

// Reads the script's output; `dialled_port` is the port this tool connected to.
[[nodiscard]] core::result<facts> parse_facts(std::string_view output, std::uint16_t dialled_port);

}  // namespace tunnel::ops
