// Ansible-style inventories: hosts, nested groups, group and host variables,
// host patterns. Read from YAML or INI files (or an inline "a,b,c" list); a
// target that is not in the inventory resolves like exec's TARGET.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace tunnel::inventory {

// The connection variables Ansible users write (ansible_host, ansible_port,
// ansible_user, ansible_ssh_private_key_file), already validated.
struct connection_settings {
    std::optional<std::string> address;  // ansible_host: where to connect instead of the name
    std::optional<uint16_t> port;        // ansible_port
    std::optional<std::string> user;     // ansible_user
    std::optional<std::string> private_key_file;  // ansible_ssh_private_key_file (~ expanded)

    friend bool operator==(const connection_settings&, const connection_settings&) = default;
};

struct host {
    std::string name;
    // Variables after precedence (all < parent group < child group < host), a JSON object.
    nlohmann::json vars = nlohmann::json::object();
    connection_settings connection;
    std::vector<std::string>
        groups;  // every group it belongs to, directly or through children; sorted
    // Not in the inventory: `name` is a target ([user@]host[:port] or an
    // ~/.ssh/config alias) resolved exactly as `tunnel exec TARGET` does.
    bool ad_hoc = false;
};

// Whether a pattern term that names no host or group becomes an ad-hoc target.
enum class unknown_names { ad_hoc_targets, error };

class inventory_builder;

class inventory {
  public:
    // Selects hosts by an Ansible pattern: `all` or `*`, a group, a host, a
    // glob (`web*`), `~regex`, combined with `:` or `,` (union), `:&x`
    // (intersection) and `:!x` (exclusion). Hosts come in inventory order,
    // ad-hoc targets after them. An empty selection is not an error.
    [[nodiscard]] core::result<std::vector<host>> select(
        std::string_view pattern, unknown_names unknown = unknown_names::ad_hoc_targets) const;

    // Keeps the hosts of `hosts` that `pattern` selects (for --limit); names
    // the pattern cannot match in this inventory are errors.
    [[nodiscard]] core::result<std::vector<host>> limit(const std::vector<host>& hosts,
                                                        std::string_view pattern) const;

    [[nodiscard]] const std::vector<host>& hosts() const noexcept { return hosts_; }
    [[nodiscard]] const host* find_host(std::string_view name) const;
    [[nodiscard]] std::vector<std::string> group_names() const;
    [[nodiscard]] bool has_group(std::string_view name) const {
        return members_.count(std::string(name)) > 0;
    }
    // Direct and indirect members of a group, in inventory order.
    [[nodiscard]] std::vector<std::string> group_hosts(std::string_view name) const;
    [[nodiscard]] const std::string& source() const noexcept { return source_; }

  private:
    friend class inventory_builder;
    std::string source_;
    std::vector<host> hosts_;                                  // inventory order
    std::map<std::string, std::vector<std::size_t>> members_;  // group -> indexes into hosts_
};

// Reads an inventory file: YAML (.yml/.yaml, or content that looks like it)
// or INI (the Ansible default). A `path` that is not a file but contains a
// comma is an inline list of targets, as `ansible -i 'web1,web2,'` takes.
[[nodiscard]] core::result<inventory> load_inventory(const std::string& path);

// Parsers, for tests and for inventories held in memory; `source` names the
// text in error messages (file:line: ...).
[[nodiscard]] core::result<inventory> parse_yaml_inventory(std::string_view text,
                                                           const std::string& source);
[[nodiscard]] core::result<inventory> parse_ini_inventory(std::string_view text,
                                                          const std::string& source);
[[nodiscard]] core::result<inventory> parse_inline_inventory(std::string_view list);

// Expands Ansible host ranges: `web[01:03]` -> web01 web02 web03, `db-[a:c]`,
// `n[0:10:5]`. Several ranges multiply. A name without brackets is returned alone.
[[nodiscard]] core::result<std::vector<std::string>> expand_host_range(std::string_view name);

}  // namespace tunnel::inventory
