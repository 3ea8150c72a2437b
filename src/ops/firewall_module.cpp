// `firewall`: ufw, firewalld, nftables or iptables, with the SSH port this
// tool uses kept open unless the step sets keep_ssh_open: false.
#include <algorithm>

#include <fmt/format.h>

#include "core/shell_quote.hpp"
#include "ops/modules.hpp"

namespace tunnel::ops {

using core::shell_join;
using core::shell_quote;

// Every field is validated at plan time (digits, ':', tcp/udp, allow/deny, address
// characters) and quoted here anyway; valid values read the same quoted, so the commands
// still match `ufw show added`.
std::string ufw_rule_command(const firewall_rule& r) {
    if (!r.from)
        return fmt::format("ufw {} {}", shell_quote(r.rule_action),
                           shell_quote(r.port + "/" + r.proto));
    return fmt::format("ufw {} from {} to any port {} proto {}", shell_quote(r.rule_action),
                       shell_quote(*r.from), shell_quote(r.port), shell_quote(r.proto));
}

std::string ufw_default_command(std::string_view policy) {
    return fmt::format("ufw default {} incoming", policy);
}

namespace {
std::string dash_range(std::string port) {
    std::replace(port.begin(), port.end(), ':', '-');
    return port;
}
std::string firewalld_rich_rule(const firewall_rule& r) {
    std::string family = r.from && r.from->find(':') != std::string::npos ? "ipv6" : "ipv4";
    std::string s = fmt::format("rule family=\"{}\"", family);
    if (r.from) s += fmt::format(" source address=\"{}\"", *r.from);
    s += fmt::format(" port port=\"{}\" protocol=\"{}\" {}", dash_range(r.port), r.proto,
                     r.rule_action == "allow" ? "accept" : "drop");
    return s;
}
}  // namespace

std::string firewalld_rule_command(const firewall_rule& r) {
    if (!r.from && r.rule_action == "allow")
        return "firewall-cmd --permanent " +
               shell_quote(fmt::format("--add-port={}/{}", dash_range(r.port), r.proto));
    return "firewall-cmd --permanent --add-rich-rule=" + shell_quote(firewalld_rich_rule(r));
}

std::string firewalld_default_command(std::string_view policy) {
    return fmt::format("firewall-cmd --permanent --set-target={}",
                       policy == "allow" ? "ACCEPT" : "default");
}

std::vector<std::string> iptables_rule_args(const firewall_rule& r) {
    std::vector<std::string> a{"-p", r.proto};
    if (r.from) {
        a.emplace_back("-s");
        a.push_back(*r.from);
    }
    a.emplace_back("--dport");
    a.push_back(r.port);
    a.emplace_back("-j");
    a.emplace_back(r.rule_action == "allow" ? "ACCEPT" : "DROP");
    return a;
}

std::string iptables_default_command(std::string_view policy) {
    return fmt::format("iptables -P INPUT {}", policy == "allow" ? "ACCEPT" : "DROP");
}

std::string nftables_ruleset(const std::vector<firewall_rule>& rules, std::string_view policy) {
    std::string s =
        "# Managed by tunnel (firewall step); local edits are overwritten.\n"
        "table inet tunnel\ndelete table inet tunnel\ntable inet tunnel {\n  chain input {\n";
    s += fmt::format("    type filter hook input priority 0; policy {};\n",
                     policy == "allow" ? "accept" : "drop");
    s += "    ct state established,related accept\n    iif lo accept\n";
    for (const auto& r : rules) {
        std::string src;
        if (r.from)
            src = fmt::format("{} saddr {} ", r.from->find(':') != std::string::npos ? "ip6" : "ip",
                              *r.from);
        s += fmt::format("    {}{} dport {} {}\n", src, r.proto, dash_range(r.port),
                         r.rule_action == "allow" ? "accept" : "drop");
    }
    s += "  }\n}\n";
    return s;
}

namespace {
bool covers(const std::string& port, std::uint16_t p) {
    auto colon = port.find(':');
    if (colon == std::string::npos) return port == std::to_string(p);
    auto lo = std::strtoul(port.substr(0, colon).c_str(), nullptr, 10);
    auto hi = std::strtoul(port.substr(colon + 1).c_str(), nullptr, 10);
    return p >= lo && p <= hi;
}
}  // namespace

bool ssh_port_open(const std::vector<firewall_rule>& rules, std::string_view policy,
                   std::uint16_t port) {
    for (const auto& r : rules)
        if (r.proto == "tcp" && !r.from && covers(r.port, port))
            return r.rule_action == "allow";  // first match wins
    return policy == "allow";
}

namespace {

// The ports to keep open: the one sshd accepted this connection on, and every
// port `sshd -T` says it listens on.
std::vector<std::uint16_t> ssh_ports(const facts& f, const probe_data& p) {
    std::vector<std::uint16_t> out{f.ssh_port};
    for (const auto& v : p.all("ssh.listen")) {
        auto n = std::strtoul(v.c_str(), nullptr, 10);
        if (n >= 1 && n <= 65535 && v.size() <= 5 &&
            std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }))
            out.push_back(static_cast<std::uint16_t>(n));
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

class firewall_module final : public module {
  public:
    std::vector<firewall_rule> rules;
    std::optional<std::string> default_incoming;
    std::string tool = "auto";
    bool keep_ssh_open = true;

    [[nodiscard]] std::string pick(const facts& f) const {
        return tool == "auto" ? f.firewall : tool;
    }
    // The rules to install: an allow rule for each SSH port not otherwise open, first, when the
    // SSH ports are kept open (`added` of them).
    struct rule_set {
        std::vector<firewall_rule> rules;
        std::size_t added = 0;
    };
    [[nodiscard]] core::result<rule_set> effective(const facts& f, std::string_view policy,
                                                   const std::vector<std::uint16_t>& ports) const {
        rule_set out;
        out.rules = rules;
        if (!keep_ssh_open) return out;
        for (auto port : ports)
            for (const auto& r : rules)
                if (r.proto == "tcp" && !r.from && covers(r.port, port) && r.rule_action == "deny")
                    return core::fail(
                        core::errc::denied,
                        fmt::format("firewall: refused: rule '{} {}/tcp' would close {}; nothing "
                                    "changed (set keep_ssh_open: false to allow it)",
                                    r.rule_action, r.port, describe_port(f, port)));
        std::vector<firewall_rule> keep;
        for (auto port : ports)
            if (!ssh_port_open(rules, policy, port))
                keep.push_back(firewall_rule{std::to_string(port), "tcp", std::nullopt, "allow"});
        out.added = keep.size();
        out.rules.insert(out.rules.begin(), keep.begin(), keep.end());
        return out;
    }
    [[nodiscard]] static std::string describe_port(const facts& f, std::uint16_t port) {
        if (port != f.ssh_port) return fmt::format("port {}, on which sshd listens", port);
        if (f.dialled_port != f.ssh_port)
            return fmt::format(
                "the SSH port {} this connection uses (sshd's own port; this tool dialled {}, "
                "which something in between forwards)",
                port, f.dialled_port);
        return fmt::format("the SSH port {} this connection uses", port);
    }

    std::string_view kind() const override { return "firewall"; }
    std::string probe(const facts& f) const override {
        auto t = pick(f);
        // Every port sshd listens on (needs root; nothing without), as `ssh.listen PORT`.
        std::string s =
            "fw_ports=$(sshd -T 2>/dev/null | awk '$1==\"port\"{print $2} "
            "$1==\"listenaddress\"{n=split($2,a,\":\"); print a[n]}' | sort -un)\n"
            "for fw_p in $fw_ports; do echo \"ssh.listen $fw_p\"; done\n";
        if (t == "ufw")
            return s +
                   "ufw status verbose 2>/dev/null | sed -n 's/^Status: /ufw.status /p; "
                   "s/^Default: /ufw.default /p'\n"
                   "ufw show added 2>/dev/null | grep '^ufw ' | sed 's/^/ufw.rule /'\n";
        if (t == "firewalld")
            return s +
                   "echo \"fwd.state $(firewall-cmd --state 2>/dev/null)\"\n"
                   "for p in $(firewall-cmd --permanent --list-ports 2>/dev/null); do echo "
                   "\"fwd.port $p\"; done\n"
                   "firewall-cmd --permanent --list-rich-rules 2>/dev/null | sed 's/^/fwd.rich /'\n"
                   "echo \"fwd.target $(firewall-cmd --permanent --get-target 2>/dev/null)\"\n";
        if (t == "nftables")
            return s + probe_path("nft", "/etc/nftables.d/tunnel.nft", true) +
                   "nft list table inet tunnel >/dev/null 2>&1 && echo nft.loaded\n";
        if (t == "iptables") {
            s += "iptables -S INPUT 2>/dev/null | sed -n 's/^-P INPUT /ipt.policy /p'\n";
            for (std::size_t i = 0; i < rules.size(); ++i)
                s += fmt::format("iptables -C INPUT {} 2>/dev/null && echo ipt.have {}\n",
                                 shell_join(iptables_rule_args(rules[i])), i);
            s += fmt::format(
                "for fw_p in {} $fw_ports; do iptables -C INPUT -p tcp --dport \"$fw_p\" -j ACCEPT "
                "2>/dev/null && echo \"ipt.sshopen $fw_p\"; done\n",
                f.ssh_port);
            s += "iptables -C INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT "
                 "2>/dev/null && echo ipt.established\n";
            return s;
        }
        return {};
    }
    core::result<check_result> check(const facts& f, const probe_data& p) const override {
        auto t = pick(f);
        check_result out;
        const auto keep_open = ssh_ports(f, p);
        if (t == "ufw") {
            auto status = p.get("ufw.status").value_or("");
            auto def =
                p.get("ufw.default").value_or("");  // "deny (incoming), allow (outgoing), ..."
            std::string have_policy = def.substr(0, def.find(' '));
            if (have_policy == "reject") have_policy = "deny";
            auto policy = default_incoming.value_or(have_policy.empty() ? "deny" : have_policy);
            auto eff = effective(f, policy, keep_open);
            if (!eff) return tl::unexpected(eff.error());
            auto have = p.all("ufw.rule");
            std::string script = "set -e\n";
            for (const auto& r : eff->rules) {
                auto cmd = ufw_rule_command(r);
                if (std::find(have.begin(), have.end(), cmd) != have.end()) continue;
                out.changes.push_back(cmd);
                script += cmd + "\n";
            }
            if (default_incoming && have_policy != *default_incoming) {
                out.changes.push_back(ufw_default_command(*default_incoming));
                script += ufw_default_command(*default_incoming) + "\n";
            }
            if (status != "active") {
                out.changes.emplace_back("ufw enable");
                script += "ufw --force enable\n";
            }
            if (out.changed()) out.actions.push_back({"ufw", script, "", false, ""});
            return out;
        }
        auto policy = default_incoming.value_or("allow");
        auto eff = effective(f, policy, keep_open);
        if (!eff) return tl::unexpected(eff.error());
        if (t == "firewalld") {
            if (p.get("fwd.state").value_or("") != "running")
                return core::fail(
                    core::errc::invalid_argument,
                    "firewall: firewalld is installed but not running; start it first");
            auto ports = p.all("fwd.port");
            auto rich = p.all("fwd.rich");
            std::string script = "set -e\n";
            for (const auto& r : eff->rules) {
                bool have =
                    !r.from && r.rule_action == "allow"
                        ? std::find(ports.begin(), ports.end(),
                                    dash_range(r.port) + "/" + r.proto) != ports.end()
                        : std::find(rich.begin(), rich.end(), firewalld_rich_rule(r)) != rich.end();
                if (have) continue;
                out.changes.push_back(firewalld_rule_command(r));
                script += firewalld_rule_command(r) + "\n";
            }
            if (default_incoming) {
                auto target = p.get("fwd.target").value_or("");
                bool is_allow = target == "ACCEPT";
                if (is_allow != (*default_incoming == "allow")) {
                    out.changes.push_back(firewalld_default_command(*default_incoming));
                    script += firewalld_default_command(*default_incoming) + "\n";
                }
            }
            if (out.changed())
                out.actions.push_back(
                    {"firewalld", script + "firewall-cmd --reload\n", "", false, ""});
            return out;
        }
        if (t == "nftables") {
            file_write w{"/etc/nftables.d/tunnel.nft",
                         nftables_ruleset(eff->rules, policy),
                         "root",
                         "root",
                         "0600",
                         "nft -c -f %s",
                         false,
                         true};
            if (auto c = check_file(w, read_path(p, "nft"), out); !c)
                return tl::unexpected(c.error());
            if (out.changed() || !p.has("nft.loaded")) {
                if (!out.changed()) out.changes.emplace_back("load table inet tunnel");
                out.actions.push_back(
                    {"nft -f", "nft -f /etc/nftables.d/tunnel.nft\n", "", false, ""});
            }
            return out;
        }
        if (t == "iptables") {
            auto have = p.all("ipt.have");
            std::string script = "set -e\n";
            if (policy == "deny" && !p.has("ipt.established")) {
                out.changes.emplace_back("accept established connections and loopback");
                script +=
                    "iptables -I INPUT 1 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n"
                    "iptables -I INPUT 2 -i lo -j ACCEPT\n";
            }
            auto open = p.all("ipt.sshopen");
            for (std::size_t i = 0; i < eff->rules.size(); ++i) {
                const auto& r = eff->rules[i];
                bool present = i < eff->added
                                   ? std::find(open.begin(), open.end(), r.port) != open.end()
                                   : std::find(have.begin(), have.end(),
                                               std::to_string(i - eff->added)) != have.end();
                if (present) continue;
                auto cmd = "iptables -A INPUT " + shell_join(iptables_rule_args(r));
                out.changes.push_back(cmd);
                script += cmd + "\n";
            }
            auto have_policy = p.get("ipt.policy").value_or("ACCEPT");
            if (default_incoming && (have_policy == "ACCEPT") != (*default_incoming == "allow")) {
                out.changes.push_back(iptables_default_command(*default_incoming));
                script += iptables_default_command(*default_incoming) + "\n";
            }
            if (out.changed()) out.actions.push_back({"iptables", script, "", false, ""});
            return out;
        }
        return core::fail(core::errc::not_found,
                          "firewall: no firewall tool on the host (ufw, firewalld, nftables, "
                          "iptables); install one first, "
                          "e.g. with a packages step");
    }
};

bool valid_port(const std::string& s) {
    auto one = [](std::string_view p) {
        if (p.empty() || p.size() > 5 ||
            !std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; }))
            return false;
        auto n = std::strtoul(std::string(p).c_str(), nullptr, 10);
        return n >= 1 && n <= 65535;
    };
    auto colon = s.find(':');
    if (colon == std::string::npos) return one(s);
    return one(std::string_view(s).substr(0, colon)) && one(std::string_view(s).substr(colon + 1));
}

bool valid_source(const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return std::isxdigit(static_cast<unsigned char>(c)) || c == '.' || c == ':' || c == '/';
    });
}

}  // namespace

std::unique_ptr<module> parse_firewall(core::yaml_reader& r, const YAML::Node& args,
                                       const std::string& path, const parse_context&) {
    if (!r.expect_map(args, path, {"rules", "default_incoming", "tool", "keep_ssh_open"})) {
        if (!args || args.IsNull()) r.error(path, "needs rules and/or default_incoming");
        return nullptr;
    }
    auto m = std::make_unique<firewall_module>();
    if (args["default_incoming"])
        m->default_incoming =
            read_choice(r, args["default_incoming"], path + ".default_incoming", {"allow", "deny"});
    if (args["tool"])
        if (auto v = read_choice(r, args["tool"], path + ".tool",
                                 {"auto", "ufw", "firewalld", "nftables", "iptables"}))
            m->tool = *v;
    if (args["keep_ssh_open"])
        m->keep_ssh_open =
            read_bool(r, args["keep_ssh_open"], path + ".keep_ssh_open").value_or(true);
    if (const auto& rules = args["rules"]) {
        if (!rules.IsSequence()) {
            r.error(path + ".rules",
                    "must be a list of rules (\"22/tcp\", \"deny 23\", or {port, proto, from, "
                    "action})");
            return m;
        }
        for (std::size_t i = 0; i < rules.size(); ++i) {
            auto rp = fmt::format("{}.rules[{}]", path, i);
            firewall_rule rule;
            const auto& n = rules[i];
            if (n.IsScalar()) {
                // "[allow|deny] PORT[/PROTO]"
                auto text = n.as<std::string>();
                auto sp = text.find(' ');
                if (sp != std::string::npos) {
                    rule.rule_action = text.substr(0, sp);
                    text = text.substr(sp + 1);
                }
                auto slash = text.find('/');
                rule.port = text.substr(0, slash);
                if (slash != std::string::npos) rule.proto = text.substr(slash + 1);
            } else if (r.expect_map(n, rp, {"port", "proto", "from", "action"})) {
                if (n["port"]) {
                    if (auto v = r.string(n["port"], rp + ".port")) rule.port = *v;
                } else {
                    r.error(rp + ".port", "is required");
                }
                if (n["proto"]) rule.proto = r.string(n["proto"], rp + ".proto").value_or("tcp");
                if (n["from"]) {
                    if (auto v = r.string(n["from"], rp + ".from"); v && *v != "any")
                        rule.from = *v;
                }
                if (n["action"])
                    rule.rule_action = r.string(n["action"], rp + ".action").value_or("allow");
            } else {
                continue;
            }
            if (!valid_port(rule.port))
                r.error(rp, fmt::format("'{}' is not a port (1-65535) or range (8000:8100)",
                                        rule.port));
            if (rule.proto != "tcp" && rule.proto != "udp")
                r.error(rp, fmt::format("protocol '{}' must be tcp or udp", rule.proto));
            if (rule.rule_action != "allow" && rule.rule_action != "deny")
                r.error(rp, fmt::format("action '{}' must be allow or deny", rule.rule_action));
            if (rule.from && !valid_source(*rule.from))
                r.error(rp, fmt::format("from '{}' is not an address or CIDR", *rule.from));
            m->rules.push_back(rule);
        }
    }
    return m;
}

}  // namespace tunnel::ops
