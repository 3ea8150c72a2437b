#include "inventory/inventory_builder.hpp"

#include <algorithm>
#include <cstdlib>

#include <fmt/format.h>

namespace tunnel::inventory {

namespace {

constexpr std::string_view group_forbidden = " \t:,&!*?[]~=#;";
constexpr std::string_view host_forbidden = " \t,#;=";

std::optional<std::string> string_var(const nlohmann::json& vars,
                                      std::initializer_list<const char*> names,
                                      std::string& which) {
    for (const char* n : names) {
        auto it = vars.find(n);
        if (it == vars.end() || it->is_null()) continue;
        which = n;
        if (it->is_string()) return it->get<std::string>();
        if (it->is_number() || it->is_boolean()) return it->dump();
        return std::string();  // a list or map: reported by the caller as empty
    }
    return std::nullopt;
}

std::string expand_home(const std::string& path) {
    if (path == "~" || path.rfind("~/", 0) == 0) {
        const char* home = std::getenv("HOME");
        if (home && *home) return std::string(home) + path.substr(1);
    }
    return path;
}

}  // namespace

core::result<connection_settings> connection_from_vars(const nlohmann::json& vars) {
    connection_settings c;
    std::string which;
    if (auto v = string_var(vars, {"ansible_host", "ansible_ssh_host"}, which)) {
        if (v->empty() || v->find_first_of(" \t/") != std::string::npos)
            return core::fail(
                core::errc::invalid_argument,
                fmt::format("{}: must be a host name or address, e.g. {}: 10.0.0.5", which, which));
        c.address = *v;
    }
    if (auto it = vars.find("ansible_port");
        it != vars.end() || vars.contains("ansible_ssh_port")) {
        const auto& p = it != vars.end() ? *it : vars["ansible_ssh_port"];
        which = it != vars.end() ? "ansible_port" : "ansible_ssh_port";
        long long port = -1;
        if (p.is_number_integer()) {
            port = p.get<long long>();
        } else if (p.is_string()) {
            const auto& s = p.get_ref<const std::string&>();
            if (!s.empty() && s.size() <= 5 &&
                std::all_of(s.begin(), s.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
                port = std::stoll(s);
        }
        if (port < 1 || port > 65535)
            return core::fail(
                core::errc::invalid_argument,
                fmt::format("{}: {} is not a port number from 1 to 65535", which, p.dump()));
        c.port = static_cast<uint16_t>(port);
    }
    if (auto v = string_var(vars, {"ansible_user", "ansible_ssh_user"}, which)) {
        if (v->empty() || v->find_first_of(" \t@:/") != std::string::npos)
            return core::fail(core::errc::invalid_argument,
                              fmt::format("{}: \"{}\" is not a user name", which, *v));
        c.user = *v;
    }
    if (auto v =
            string_var(vars, {"ansible_ssh_private_key_file", "ansible_private_key_file"}, which)) {
        if (v->empty())
            return core::fail(core::errc::invalid_argument,
                              fmt::format("{}: must be the path of a private key", which));
        c.private_key_file = expand_home(*v);
    }
    if (auto it = vars.find("ansible_connection");
        it != vars.end() && !(it->is_string() && *it == "ssh"))
        return core::fail(
            core::errc::invalid_argument,
            fmt::format("ansible_connection: {} is not supported; tunnel connects over ssh only "
                        "(remove the variable or set it to ssh)",
                        it->dump()));
    return c;
}

inventory_builder::inventory_builder(std::string source) : source_(std::move(source)) {
    groups_["all"].where = source_;
}

void inventory_builder::error(const std::string& where, const std::string& message) {
    errors_.push_back(fmt::format("{}: {}", where, message));
}

bool inventory_builder::check_name(const std::string& kind, const std::string& name,
                                   const std::string& where) {
    const auto forbidden = kind == "group" ? group_forbidden : host_forbidden;
    if (name.empty()) {
        error(where, fmt::format("empty {} name", kind));
        return false;
    }
    if (auto pos = name.find_first_of(forbidden); pos != std::string::npos) {
        error(
            where,
            fmt::format(
                "{} name \"{}\" contains '{}', which patterns cannot select; use letters, digits, "
                "'-', '_' and '.'",
                kind, name, name[pos]));
        return false;
    }
    if (kind == "host" && (name[0] == '&' || name[0] == '!' || name[0] == '~')) {
        error(where,
              fmt::format("host name \"{}\" starts with '{}', which patterns read as an operator",
                          name, name[0]));
        return false;
    }
    return true;
}

void inventory_builder::add_group(const std::string& group, const std::string& where) {
    if (!check_name("group", group, where)) return;
    auto [it, inserted] = groups_.try_emplace(group);
    if (inserted) it->second.where = where;
}

void inventory_builder::add_child(const std::string& parent, const std::string& child,
                                  const std::string& where) {
    if (!check_name("group", child, where)) return;
    add_group(parent, where);
    add_group(child, where);
    if (child == "all") {
        error(where, "group all cannot be a child of another group");
        return;
    }
    if (child == parent) {
        error(where, fmt::format("group {} cannot be its own child", child));
        return;
    }
    auto& kids = groups_[parent].children;
    if (std::find(kids.begin(), kids.end(), child) == kids.end()) {
        kids.push_back(child);
        parents_[child].push_back(parent);
    }
}

void inventory_builder::add_host(const std::string& group, const std::string& host,
                                 const std::string& where) {
    if (!check_name("host", host, where)) return;
    add_group(group, where);
    auto [it, inserted] = hosts_.try_emplace(host);
    if (inserted) {
        it->second.where = where;
        host_order_.push_back(host);
    }
    auto& members = groups_[group].hosts;
    if (std::find(members.begin(), members.end(), host) == members.end()) members.push_back(host);
}

void inventory_builder::set_group_var(const std::string& group, const std::string& key,
                                      nlohmann::json value) {
    groups_[group].vars[key] = std::move(value);
}

void inventory_builder::set_host_var(const std::string& host, const std::string& key,
                                     nlohmann::json value) {
    hosts_[host].vars[key] = std::move(value);
}

void inventory_builder::check_cycles() {
    // Depth-first search with colours; a grey node reached again closes a cycle.
    std::map<std::string, int> colour;
    std::vector<std::string> stack;
    std::function<bool(const std::string&)> visit = [&](const std::string& g) {
        colour[g] = 1;
        stack.push_back(g);
        for (const auto& c : groups_[g].children) {
            if (colour[c] == 1) {
                auto from = std::find(stack.begin(), stack.end(), c);
                std::vector<std::string> loop(from, stack.end());
                loop.push_back(c);
                error(groups_[c].where,
                      fmt::format("groups form a cycle: {}", fmt::join(loop, " -> ")));
                return false;
            }
            if (colour[c] == 0 && !visit(c)) return false;
        }
        colour[g] = 2;
        stack.pop_back();
        return true;
    };
    for (const auto& [name, _] : groups_)
        if (colour[name] == 0 && !visit(name)) return;
}

int inventory_builder::depth(const std::string& group, std::map<std::string, int>& memo) const {
    if (group == "all") return 0;
    if (auto it = memo.find(group); it != memo.end()) return it->second;
    int d = 1;
    if (auto p = parents_.find(group); p != parents_.end())
        for (const auto& parent : p->second) d = std::max(d, depth(parent, memo) + 1);
    memo[group] = d;
    return d;
}

core::result<inventory> inventory_builder::finish() {
    groups_.try_emplace("ungrouped");
    if (ok()) check_cycles();
    for (const auto& [name, h] : hosts_)
        if (groups_.count(name) && name != "all")
            error(h.where,
                  fmt::format(
                      "\"{}\" is both a host and a group: rename one so patterns are unambiguous",
                      name));
    if (!ok())
        return core::fail(core::errc::invalid_argument,
                          fmt::format("{}", fmt::join(errors_, "\n")));

    // Direct groups of each host; a host in no group but all is in ungrouped.
    std::map<std::string, std::vector<std::string>> direct;
    for (const auto& [gname, g] : groups_)
        for (const auto& h : g.hosts) direct[h].push_back(gname);
    for (const auto& h : host_order_) {
        auto& d = direct[h];
        if (std::all_of(d.begin(), d.end(), [](const std::string& g) { return g == "all"; })) {
            d.push_back("ungrouped");
            groups_["ungrouped"].hosts.push_back(h);
        }
    }

    std::map<std::string, int> memo;
    inventory inv;
    inv.source_ = source_;
    for (const auto& [gname, _] : groups_) inv.members_[gname];
    for (const auto& hname : host_order_) {
        std::set<std::string> all_groups{"all"};
        std::vector<std::string> todo = direct[hname];
        while (!todo.empty()) {
            auto g = todo.back();
            todo.pop_back();
            if (!all_groups.insert(g).second) continue;
            if (auto p = parents_.find(g); p != parents_.end())
                todo.insert(todo.end(), p->second.begin(), p->second.end());
        }
        // Ansible's order: shallower groups first, then by name; the host's own vars last.
        std::vector<std::string> order(all_groups.begin(), all_groups.end());
        std::stable_sort(order.begin(), order.end(),
                         [&](const std::string& a, const std::string& b) {
                             return depth(a, memo) < depth(b, memo);
                         });
        host h;
        h.name = hname;
        for (const auto& g : order) h.vars.update(groups_[g].vars);
        h.vars.update(hosts_[hname].vars);
        h.groups.assign(all_groups.begin(), all_groups.end());
        auto conn = connection_from_vars(h.vars);
        if (!conn) {
            error(hosts_[hname].where, fmt::format("host {}: {}", hname, conn.error().message));
            continue;
        }
        h.connection = *conn;
        const std::size_t index = inv.hosts_.size();
        for (const auto& g : h.groups) inv.members_[g].push_back(index);
        inv.hosts_.push_back(std::move(h));
    }
    if (!ok())
        return core::fail(core::errc::invalid_argument,
                          fmt::format("{}", fmt::join(errors_, "\n")));
    return inv;
}

}  // namespace tunnel::inventory
