#include "ops/audit.hpp"

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

#include "core/shell_quote.hpp"
#include "ops/module.hpp"

namespace tunnel::ops {

std::string_view to_string(verdict v) noexcept {
    switch (v) {
        case verdict::pass:
            return "pass";
        case verdict::warn:
            return "warn";
        case verdict::fail:
            return "fail";
    }
    return "?";
}

std::size_t audit_report::count(verdict v) const {
    return static_cast<std::size_t>(std::count_if(
        checks.begin(), checks.end(), [v](const audit_check& c) { return c.result == v; }));
}

std::string audit_script() {
    return R"SH(PATH="$PATH:/usr/sbin:/sbin"
echo "audit.uid $(id -u)"
[ -n "${SSH_CONNECTION:-}" ] && echo "audit.ssh_port ${SSH_CONNECTION##* }"
sshd -T 2>/dev/null | sed 's/^/sshd /'
ss -Htln 2>/dev/null | awk '{print "listen", $4}'
if command -v ufw >/dev/null 2>&1; then ufw status 2>/dev/null | sed -n 's/^Status: /fw.ufw /p'; fi
if command -v firewall-cmd >/dev/null 2>&1; then echo "fw.firewalld $(firewall-cmd --state 2>/dev/null)"; fi
if command -v nft >/dev/null 2>&1; then nft list ruleset 2>/dev/null | grep -Eq 'hook input.*policy drop' && echo "fw.nft drop"; fi
if command -v iptables >/dev/null 2>&1; then iptables -S INPUT 2>/dev/null | sed -n 's/^-P INPUT /fw.iptables /p'; fi
for g in sudo wheel admin; do getent group "$g" | awk -F: -v g="$g" '{print "sudo.group", g, $4}'; done
cat /etc/sudoers /etc/sudoers.d/* 2>/dev/null | grep -Ev '^[[:space:]]*(#|Defaults|$)' | grep -E 'ALL' | sed 's/^/sudo.rule /'
awk -F: '$2 !~ /^[!*]/ && $2 != "" {print "pw.user", $1}' /etc/shadow 2>/dev/null
if command -v apt-get >/dev/null 2>&1; then
  if ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then
    echo "updates.security $(apt-get -s -o Debug::NoLocking=1 upgrade 2>/dev/null | grep '^Inst' | grep -ci security)"
  else echo "updates.unknown package lists were never downloaded (apt-get update)"; fi
elif command -v dnf >/dev/null 2>&1; then
  echo "updates.security $(dnf -q updateinfo list --security 2>/dev/null | wc -l)"
else echo "updates.unknown no apt or dnf"; fi
if command -v fail2ban-client >/dev/null 2>&1; then
  echo "f2b.active $(systemctl is-active fail2ban 2>/dev/null)"
  fail2ban-client status 2>/dev/null | sed -n 's/.*Jail list:[[:space:]]*/f2b.jails /p'
else echo "f2b.missing"; fi
)SH";
}

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= s.size(); ++i)
        if (i == s.size() || s[i] == sep) {
            if (i > start) out.push_back(s.substr(start, i - start));
            start = i + 1;
        }
    return out;
}

}  // namespace

core::result<audit_report> evaluate_audit(std::string_view output, std::uint16_t ssh_port) {
    probe_data p(output);
    if (!p.has("audit.uid"))
        return core::fail(core::errc::protocol_error,
                          "audit: the host's answer was not understood");
    audit_report r;
    auto add = [&](std::string id, std::string title, verdict v, std::string detail) {
        r.checks.push_back({std::move(id), std::move(title), v, std::move(detail)});
    };
    const bool root = p.get("audit.uid").value_or("") == "0";

    // sshd -T prints lower-case keywords: "sshd passwordauthentication yes".
    std::map<std::string, std::string> sshd;
    for (const auto& line : p.all("sshd")) {
        auto sp = line.find(' ');
        if (sp != std::string::npos) sshd[line.substr(0, sp)] = line.substr(sp + 1);
    }
    if (sshd.empty()) {
        add("sshd.config", "sshd effective settings", verdict::warn,
            root ? "sshd -T printed nothing (is openssh-server installed?)"
                 : "sshd -T needs root: run with --sudo");
    } else {
        auto pw = sshd["passwordauthentication"];
        add("sshd.password_authentication", "SSH password authentication",
            pw == "no" ? verdict::pass : verdict::fail,
            pw == "no" ? "disabled"
                       : "enabled: set PasswordAuthentication no (sshd step) and use keys");
        auto kbd = sshd.count("kbdinteractiveauthentication")
                       ? sshd["kbdinteractiveauthentication"]
                       : sshd["challengeresponseauthentication"];
        add("sshd.kbd_interactive", "SSH keyboard-interactive authentication",
            kbd == "yes" ? verdict::warn : verdict::pass,
            kbd == "yes"
                ? "enabled: with PAM this can allow passwords; set KbdInteractiveAuthentication no"
                : "disabled");
        auto root_login = sshd["permitrootlogin"];
        verdict rv = root_login == "yes" ? verdict::fail : verdict::pass;
        add("sshd.permit_root_login", "SSH root login", rv,
            root_login == "yes"
                ? "yes: root may log in with a password; use prohibit-password or no"
                : fmt::format("{}", root_login));
        auto tries = std::atoi(sshd["maxauthtries"].c_str());
        add("sshd.max_auth_tries", "SSH MaxAuthTries",
            tries > 0 && tries <= 4 ? verdict::pass : verdict::warn,
            fmt::format("{}{}", tries, tries > 4 ? ": 4 or fewer slows guessing" : ""));
        add("sshd.x11_forwarding", "SSH X11 forwarding",
            sshd["x11forwarding"] == "yes" ? verdict::warn : verdict::pass,
            sshd["x11forwarding"] == "yes" ? "enabled: set X11Forwarding no unless needed"
                                           : "disabled");
        std::vector<std::string> weak;
        for (const auto& c : split(sshd["ciphers"], ','))
            if (c.find("cbc") != std::string::npos || c.find("3des") != std::string::npos ||
                c.find("arcfour") != std::string::npos)
                weak.push_back(c);
        for (const auto& m : split(sshd["macs"], ','))
            if (m.find("md5") != std::string::npos || m == "hmac-sha1" ||
                m == "umac-64@openssh.com")
                weak.push_back(m);
        for (const auto& k : split(sshd["kexalgorithms"], ','))
            if (k.find("sha1") != std::string::npos) weak.push_back(k);
        add("sshd.algorithms", "SSH ciphers, MACs and key exchange",
            weak.empty() ? verdict::pass : verdict::warn,
            weak.empty()
                ? "no weak algorithms offered"
                : fmt::format("weak algorithms offered: {} (set Ciphers/MACs/KexAlgorithms)",
                              fmt::join(weak, ", ")));
        auto allow = sshd.count("allowusers") ? sshd["allowusers"] : "";
        add("sshd.allow_users", "SSH AllowUsers/AllowGroups", verdict::pass,
            allow.empty() && !sshd.count("allowgroups")
                ? "not restricted (any account with a key may log in)"
                : fmt::format("users: {} groups: {}", allow.empty() ? "-" : allow,
                              sshd.count("allowgroups") ? sshd["allowgroups"] : "-"));
    }

    // Listening TCP ports on non-loopback addresses.
    std::set<std::string> exposed, local;
    for (const auto& addr : p.all("listen")) {
        auto colon = addr.rfind(':');
        if (colon == std::string::npos) continue;
        auto host = addr.substr(0, colon), port = addr.substr(colon + 1);
        bool loopback = host.rfind("127.", 0) == 0 || host == "[::1]" || host == "::1";
        (loopback ? local : exposed).insert(port);
    }
    // sshd's own ports: `sshd -T` (every Port line) and the server's side of
    // this connection ($SSH_CONNECTION field 4). Behind NAT or a port forward
    // the port we dialled is not one of them; it is only the fallback.
    std::set<std::string> ssh_ports;
    for (const auto& line : p.all("sshd"))
        if (line.rfind("port ", 0) == 0) ssh_ports.insert(line.substr(5));
    if (auto own = p.get("audit.ssh_port"); own && !own->empty()) ssh_ports.insert(*own);
    if (ssh_ports.empty()) ssh_ports.insert(std::to_string(ssh_port));
    const std::string ssh_text = fmt::format("{}", fmt::join(ssh_ports, ", "));
    std::vector<std::string> others;
    for (const auto& port : exposed)
        if (!ssh_ports.count(port)) others.push_back(port);
    add("net.listening", "Listening TCP ports", others.empty() ? verdict::pass : verdict::warn,
        others.empty()
            ? fmt::format("only SSH ({}) is reachable from outside", ssh_text)
            : fmt::format("reachable from outside: {} (besides SSH {}); loopback only: {}",
                          fmt::join(others, ", "), ssh_text,
                          local.empty() ? "-" : fmt::format("{}", fmt::join(local, ", "))));

    // Firewall.
    std::string fw;
    if (p.get("fw.ufw").value_or("") == "active")
        fw = "ufw active";
    else if (p.get("fw.firewalld").value_or("") == "running")
        fw = "firewalld running";
    else if (p.has("fw.nft"))
        fw = "nftables input policy drop";
    else if (p.get("fw.iptables").value_or("") == "DROP")
        fw = "iptables INPUT policy DROP";
    add("firewall", "Firewall", fw.empty() ? verdict::fail : verdict::pass,
        fw.empty() ? (root ? "no active firewall (ufw, firewalld, nftables or iptables with a drop "
                             "policy); add a firewall step"
                           : "no active firewall found (run with --sudo to read nftables/iptables)")
                   : fw);

    // Sudo.
    std::vector<std::string> admins, nopasswd;
    for (const auto& g : p.all("sudo.group")) {
        auto parts = split(g, ' ');
        if (parts.size() >= 2)
            for (const auto& u : split(parts[1], ',')) admins.push_back(u + " (" + parts[0] + ")");
    }
    for (const auto& rule : p.all("sudo.rule"))
        if (rule.find("NOPASSWD") != std::string::npos && rule.find("ALL") != std::string::npos &&
            rule.find(": ALL") != std::string::npos)
            nopasswd.push_back(rule);
    add("sudo.users", "Sudo-capable users", nopasswd.empty() ? verdict::pass : verdict::warn,
        fmt::format("group members: {}; {}",
                    admins.empty() ? "none" : fmt::format("{}", fmt::join(admins, ", ")),
                    nopasswd.empty()
                        ? "no passwordless ALL rules"
                        : fmt::format("passwordless ALL rules: {}", fmt::join(nopasswd, " | "))));

    // Password accounts.
    auto pw_users = p.all("pw.user");
    bool pw_auth = !sshd.empty() && sshd["passwordauthentication"] != "no";
    add("accounts.passwords", "Accounts with passwords",
        pw_users.empty() ? verdict::pass : (pw_auth ? verdict::fail : verdict::warn),
        !root              ? "needs root to read /etc/shadow: run with --sudo"
        : pw_users.empty() ? "none"
                           : fmt::format("{}{}", fmt::join(pw_users, ", "),
                                         pw_auth ? " (and SSH accepts passwords)"
                                                 : " (SSH does not accept passwords)"));

    // Security updates.
    if (auto n = p.get("updates.security")) {
        auto count = std::atoi(n->c_str());
        add("updates.security", "Pending security updates",
            count == 0 ? verdict::pass : verdict::fail,
            count == 0 ? "none"
                       : fmt::format("{} pending: upgrade (or enable auto_updates)", count));
    } else {
        add("updates.security", "Pending security updates", verdict::warn,
            p.get("updates.unknown").value_or("unknown"));
    }

    // fail2ban.
    if (p.has("f2b.missing")) {
        add("fail2ban", "fail2ban", verdict::warn, "not installed (fail2ban step)");
    } else {
        bool active = p.get("f2b.active").value_or("") == "active";
        auto jails = p.get("f2b.jails").value_or("");
        add("fail2ban", "fail2ban",
            active && jails.find("sshd") != std::string::npos ? verdict::pass : verdict::warn,
            active ? fmt::format("active, jails: {}", jails.empty() ? "none" : jails)
                   : "installed but not running");
    }
    return r;
}

nlohmann::json to_json(const audit_report& r) {
    nlohmann::json checks = nlohmann::json::array();
    for (const auto& c : r.checks)
        checks.push_back({{"id", c.id},
                          {"title", c.title},
                          {"verdict", to_string(c.result)},
                          {"detail", c.detail}});
    return {{"checks", checks},
            {"summary",
             {{"pass", r.count(verdict::pass)},
              {"warn", r.count(verdict::warn)},
              {"fail", r.count(verdict::fail)}}}};
}

std::string format_audit(const audit_report& r, std::string_view target) {
    std::string s = fmt::format("audit of {}\n", target);
    for (const auto& c : r.checks)
        s += fmt::format("  {:<4}  {:<38} {}\n", to_string(c.result), c.title, c.detail);
    s += fmt::format("{} pass, {} warn, {} fail\n", r.count(verdict::pass), r.count(verdict::warn),
                     r.count(verdict::fail));
    return s;
}

core::result<std::string> journal_command(std::string_view unit, unsigned lines, bool follow) {
    bool ok = !unit.empty() && unit.front() != '-' && unit.size() <= 256 &&
              std::all_of(unit.begin(), unit.end(), [](char c) {
                  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' ||
                         c == '.' || c == '@' || c == ':' || c == '\\';
              });
    if (!ok)
        return core::fail(core::errc::invalid_argument,
                          fmt::format("'{}' is not a systemd unit name", unit));
    return fmt::format("journalctl --no-pager -u {} -n {}{}", core::shell_quote(unit), lines,
                       follow ? " -f" : "");
}

}  // namespace tunnel::ops
