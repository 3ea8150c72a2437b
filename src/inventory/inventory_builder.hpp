// Collects groups, hosts and variables as the YAML and INI readers find them,
// then checks the whole (cycles, names, connection variables) and computes
// each host's variables with Ansible's precedence.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "inventory/inventory.hpp"

namespace tunnel::inventory {

class inventory_builder {
  public:
    explicit inventory_builder(std::string source);

    // `where` locates the definition for error messages ("hosts.ini:12", "all.children.web").
    void add_group(const std::string& group, const std::string& where);
    void add_child(const std::string& parent, const std::string& child, const std::string& where);
    void add_host(const std::string& group, const std::string& host, const std::string& where);
    void set_group_var(const std::string& group, const std::string& key, nlohmann::json value);
    void set_host_var(const std::string& host, const std::string& key, nlohmann::json value);

    void error(const std::string& where, const std::string& message);
    [[nodiscard]] bool ok() const noexcept { return errors_.empty(); }

    // Every recorded problem at once, or the inventory.
    [[nodiscard]] core::result<inventory> finish();

  private:
    struct group_data {
        nlohmann::json vars = nlohmann::json::object();
        std::vector<std::string> children;
        std::vector<std::string> hosts;
        std::string where;
    };
    struct host_data {
        nlohmann::json vars = nlohmann::json::object();
        std::string where;
    };
    bool check_name(const std::string& kind, const std::string& name, const std::string& where);
    void check_cycles();
    int depth(const std::string& group, std::map<std::string, int>& memo) const;

    std::string source_;
    std::map<std::string, group_data> groups_;
    std::map<std::string, std::vector<std::string>> parents_;
    std::map<std::string, host_data> hosts_;
    std::vector<std::string> host_order_;
    std::vector<std::string> errors_;
};

// Reads ansible_host/ansible_port/ansible_user/ansible_ssh_private_key_file
// (and their ansible_ssh_* spellings) out of a host's variables.
[[nodiscard]] core::result<connection_settings> connection_from_vars(const nlohmann::json& vars);

}  // namespace tunnel::inventory
