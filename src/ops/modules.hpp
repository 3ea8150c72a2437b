// The module parsers (one per `module:` key) and the pure command builders
// they use, exposed for unit tests.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ops/module.hpp"

namespace tunnel::ops {

#define TUNNEL_OPS_PARSER(name)                                                        \
    std::unique_ptr<module> parse_##name(core::yaml_reader& r, const YAML::Node& args, \
                                         const std::string& path, const parse_context& ctx)
TUNNEL_OPS_PARSER(user);
TUNNEL_OPS_PARSER(authorized_key);
TUNNEL_OPS_PARSER(directory);
TUNNEL_OPS_PARSER(file);
TUNNEL_OPS_PARSER(template);
TUNNEL_OPS_PARSER(sudoers);
TUNNEL_OPS_PARSER(packages);
TUNNEL_OPS_PARSER(service);
TUNNEL_OPS_PARSER(sshd);
TUNNEL_OPS_PARSER(firewall);
TUNNEL_OPS_PARSER(fail2ban);
TUNNEL_OPS_PARSER(auto_updates);
TUNNEL_OPS_PARSER(command);
#undef TUNNEL_OPS_PARSER

// ---- packages ----
enum class package_state { present, absent, latest };
// Shell commands for a package manager (apt, dnf, yum, pacman, zypper);
// nullopt for an unknown manager.
[[nodiscard]] std::optional<std::string> package_install_command(
    std::string_view manager, const std::vector<std::string>& names);
[[nodiscard]] std::optional<std::string> package_remove_command(
    std::string_view manager, const std::vector<std::string>& names);
[[nodiscard]] std::optional<std::string> package_upgrade_command(
    std::string_view manager, const std::vector<std::string>& names);
[[nodiscard]] std::optional<std::string> package_refresh_command(std::string_view manager);
// Prints `pkg.installed NAME VERSION` for each installed name and, when
// `with_updates`, `pkg.upgradable NAME` for those with a newer version.
[[nodiscard]] std::optional<std::string> package_query_command(
    std::string_view manager, const std::vector<std::string>& names, bool with_updates);

// ---- firewall ----
struct firewall_rule {
    std::string port;                   // "22", "8000:8100"
    std::string proto = "tcp";          // tcp, udp
    std::optional<std::string> from;    // source address/CIDR
    std::string rule_action = "allow";  // allow, deny
    friend bool operator==(const firewall_rule&, const firewall_rule&) = default;
};
// Commands of each tool for one rule / the default incoming policy.
[[nodiscard]] std::string ufw_rule_command(const firewall_rule& rule);
[[nodiscard]] std::string ufw_default_command(std::string_view policy);
[[nodiscard]] std::string firewalld_rule_command(const firewall_rule& rule);
[[nodiscard]] std::string firewalld_default_command(std::string_view policy);
[[nodiscard]] std::vector<std::string> iptables_rule_args(
    const firewall_rule& rule);  // after -A/-C INPUT
[[nodiscard]] std::string iptables_default_command(std::string_view policy);
// The whole `inet tunnel` table nftables loads from /etc/nftables.d/tunnel.nft.
[[nodiscard]] std::string nftables_ruleset(const std::vector<firewall_rule>& rules,
                                           std::string_view policy);
// Does the rule set leave `port`/tcp reachable from anywhere under `policy`?
[[nodiscard]] bool ssh_port_open(const std::vector<firewall_rule>& rules, std::string_view policy,
                                 std::uint16_t port);

// ---- service ----
struct unit_fields {
    std::vector<std::pair<std::string, std::string>> unit;     // [Unit]
    std::vector<std::pair<std::string, std::string>> service;  // [Service]
    std::vector<std::pair<std::string, std::string>> install;  // [Install]
};
[[nodiscard]] std::string render_unit(const unit_fields& u);

// ---- sshd ----
// A drop-in name for /etc/ssh/sshd_config.d: [A-Za-z0-9._-]+ ending in .conf,
// not starting with '.' (sshd's Include glob skips those).
[[nodiscard]] bool is_sshd_dropin_name(std::string_view name);
// The drop-in text for sshd settings (keyword value lines, in order).
[[nodiscard]] std::string render_sshd_settings(
    const std::vector<std::pair<std::string, std::string>>& settings);

}  // namespace tunnel::ops
