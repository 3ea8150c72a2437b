// `packages`, `fail2ban` and `auto_updates`, and the package-manager command lines.
#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "core/shell_quote.hpp"
#include "ops/modules.hpp"

namespace tunnel::ops {

using core::shell_join;
using core::shell_quote;

namespace {
std::string words(const std::vector<std::string>& names) {
    return shell_join(names);
}
constexpr std::string_view apt_env = "DEBIAN_FRONTEND=noninteractive ";
constexpr std::string_view apt_opts =
    "-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold";
}  // namespace

std::optional<std::string> package_install_command(std::string_view manager,
                                                   const std::vector<std::string>& names) {
    auto n = words(names);
    if (manager == "apt") return fmt::format("{}apt-get install {} -- {}", apt_env, apt_opts, n);
    if (manager == "dnf" || manager == "yum") return fmt::format("{} install -y -- {}", manager, n);
    if (manager == "pacman") return fmt::format("pacman -S --noconfirm --needed -- {}", n);
    if (manager == "zypper") return fmt::format("zypper --non-interactive install -- {}", n);
    return std::nullopt;
}

std::optional<std::string> package_remove_command(std::string_view manager,
                                                  const std::vector<std::string>& names) {
    auto n = words(names);
    if (manager == "apt") return fmt::format("{}apt-get remove -y -q -- {}", apt_env, n);
    if (manager == "dnf" || manager == "yum") return fmt::format("{} remove -y -- {}", manager, n);
    if (manager == "pacman") return fmt::format("pacman -R --noconfirm -- {}", n);
    if (manager == "zypper") return fmt::format("zypper --non-interactive remove -- {}", n);
    return std::nullopt;
}

std::optional<std::string> package_upgrade_command(std::string_view manager,
                                                   const std::vector<std::string>& names) {
    auto n = words(names);
    if (manager == "apt")
        return fmt::format("{}apt-get install --only-upgrade {} -- {}", apt_env, apt_opts, n);
    if (manager == "dnf" || manager == "yum") return fmt::format("{} upgrade -y -- {}", manager, n);
    if (manager == "pacman") return fmt::format("pacman -S --noconfirm -- {}", n);
    if (manager == "zypper") return fmt::format("zypper --non-interactive update -- {}", n);
    return std::nullopt;
}

std::optional<std::string> package_refresh_command(std::string_view manager) {
    if (manager == "apt") return std::string("apt-get update -q");
    if (manager == "dnf" || manager == "yum") return fmt::format("{} makecache -q", manager);
    if (manager == "pacman") return std::string("pacman -Sy --noconfirm");
    if (manager == "zypper") return std::string("zypper --non-interactive refresh");
    return std::nullopt;
}

std::optional<std::string> package_query_command(std::string_view manager,
                                                 const std::vector<std::string>& names,
                                                 bool with_updates) {
    auto n = words(names);
    std::string s;
    if (manager == "apt") {
        s = fmt::format(
            "dpkg-query -W -f='${{Package}} ${{db:Status-Status}} ${{Version}}\\n' -- {} "
            "2>/dev/null | "
            "awk '$2==\"installed\"{{print \"pkg.installed\", $1, $3}}'\n",
            n);
        if (with_updates)
            s += fmt::format(
                "for n in {}; do apt-cache policy -- \"$n\" 2>/dev/null | awk -v n=\"$n\" "
                "'/Installed:/{{i=$2}} /Candidate:/{{c=$2}} END{{if (i!=\"\" && i!=\"(none)\" && "
                "c!=\"\" && "
                "c!=\"(none)\" && i!=c) print \"pkg.upgradable\", n}}'; done\n",
                n);
    } else if (manager == "dnf" || manager == "yum" || manager == "zypper") {
        s = fmt::format(
            "rpm -q --qf 'pkg.installed %{{NAME}} %{{VERSION}}-%{{RELEASE}}\\n' -- {} 2>/dev/null "
            "| "
            "grep '^pkg.installed '\n",
            n);
        if (with_updates && manager != "zypper")
            s += fmt::format(
                "{} -q check-update -- {} 2>/dev/null | awk 'NF==3{{sub(/\\.[^.]*$/, \"\", $1); "
                "print \"pkg.upgradable\", $1}}'\n",
                manager, n);
        else if (with_updates)
            s += "zypper -q --non-interactive list-updates 2>/dev/null | awk -F'|' 'NR>2{gsub(/ /, "
                 "\"\", $3); "
                 "print \"pkg.upgradable\", $3}'\n";
    } else if (manager == "pacman") {
        s = fmt::format("pacman -Q -- {} 2>/dev/null | sed 's/^/pkg.installed /'\n", n);
        if (with_updates)
            s += fmt::format(
                "pacman -Qu -- {} 2>/dev/null | awk '{{print \"pkg.upgradable\", $1}}'\n", n);
    } else {
        return std::nullopt;
    }
    return s;
}

namespace {

std::set<std::string> installed_names(const probe_data& p) {
    std::set<std::string> out;
    for (const auto& v : p.all("pkg.installed")) out.insert(v.substr(0, v.find(' ')));
    return out;
}

core::result<std::string> need_manager(const facts& f, std::string_view step) {
    if (f.pkg_manager.empty())
        return core::fail(
            core::errc::not_found,
            fmt::format("{}: no package manager found on the host (apt, dnf, yum, pacman, zypper)",
                        step));
    return f.pkg_manager;
}

// Adds the install action for `names` missing from the probe.
void ensure_installed(const facts& f, const std::vector<std::string>& names, const probe_data& p,
                      check_result& out) {
    auto have = installed_names(p);
    std::vector<std::string> missing;
    for (const auto& n : names)
        if (!have.count(n)) missing.push_back(n);
    if (missing.empty()) return;
    out.changes.push_back(fmt::format("install {}", fmt::join(missing, ", ")));
    out.actions.push_back({fmt::format("install {}", fmt::join(missing, " ")),
                           *package_install_command(f.pkg_manager, missing) + "\n", "", false, ""});
}

class packages_module final : public module {
  public:
    std::vector<std::string> names;
    std::string state = "present";
    bool update_cache = false;
    std::string_view kind() const override { return "packages"; }
    std::string probe(const facts& f) const override {
        return package_query_command(f.pkg_manager, names, state == "latest").value_or("");
    }
    core::result<check_result> check(const facts& f, const probe_data& p) const override {
        if (auto m = need_manager(f, "packages"); !m) return tl::unexpected(m.error());
        check_result out;
        auto have = installed_names(p);
        std::vector<std::string> todo;
        if (state == "absent") {
            for (const auto& n : names)
                if (have.count(n)) todo.push_back(n);
            if (todo.empty()) return out;
            out.changes.push_back(fmt::format("remove {}", fmt::join(todo, ", ")));
            out.actions.push_back({"remove packages",
                                   *package_remove_command(f.pkg_manager, todo) + "\n", "", false,
                                   ""});
            return out;
        }
        std::string script;
        if (update_cache) script += *package_refresh_command(f.pkg_manager) + "\n";
        std::vector<std::string> missing, outdated;
        auto upgradable = p.all("pkg.upgradable");
        for (const auto& n : names) {
            if (!have.count(n))
                missing.push_back(n);
            else if (state == "latest" &&
                     std::find(upgradable.begin(), upgradable.end(), n) != upgradable.end())
                outdated.push_back(n);
        }
        if (!missing.empty()) {
            out.changes.push_back(fmt::format("install {}", fmt::join(missing, ", ")));
            script += *package_install_command(f.pkg_manager, missing) + "\n";
        }
        if (!outdated.empty()) {
            out.changes.push_back(fmt::format("upgrade {}", fmt::join(outdated, ", ")));
            script += *package_upgrade_command(f.pkg_manager, outdated) + "\n";
        }
        if (out.changed()) out.actions.push_back({"packages", "set -e\n" + script, "", false, ""});
        return out;
    }
};

bool is_ini_name(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
    });
}

class fail2ban_module final : public module {
  public:
    std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> jails;
    static constexpr std::string_view path = "/etc/fail2ban/jail.d/tunnel.local";

    [[nodiscard]] std::vector<std::string> packages(const facts& f) const {
        std::vector<std::string> p{"fail2ban"};
        if (f.pkg_manager == "apt" && f.init_system == "systemd") p.emplace_back("python3-systemd");
        return p;
    }
    [[nodiscard]] std::string render(const facts& f) const {
        std::string s = "# Managed by tunnel (fail2ban step); local edits are overwritten.\n";
        // Debian 12 logs sshd to the journal only: read it there.
        if (f.init_system == "systemd") s += "[DEFAULT]\nbackend = systemd\n\n";
        for (const auto& [name, settings] : jails) {
            s += fmt::format("[{}]\n", name);
            for (const auto& [k, v] : settings) s += fmt::format("{} = {}\n", k, v);
            s += "\n";
        }
        return s;
    }
    std::string_view kind() const override { return "fail2ban"; }
    std::string probe(const facts& f) const override {
        return package_query_command(f.pkg_manager, packages(f), false).value_or("") +
               probe_path("jail", path, true) +
               "echo \"svc.enabled $(systemctl is-enabled fail2ban 2>/dev/null)\"; "
               "echo \"svc.active $(systemctl is-active fail2ban 2>/dev/null)\"\n";
    }
    core::result<check_result> check(const facts& f, const probe_data& p) const override {
        if (auto m = need_manager(f, "fail2ban"); !m) return tl::unexpected(m.error());
        check_result out;
        ensure_installed(f, packages(f), p, out);
        auto have = read_path(p, "jail");
        check_result file;
        file_write w{std::string(path), render(f), "root", "root", "0644",
                     std::nullopt,      true,      true};
        if (auto c = check_file(w, have, file); !c) return tl::unexpected(c.error());
        out.diff = file.diff;
        for (auto& c : file.changes) out.changes.push_back(c);
        if (file.changed()) {
            // fail2ban has no per-file check: write, test the whole config, put the old one back if
            // refused.
            auto a = write_file_action(w);
            a.script +=
                "if ! out=$(fail2ban-client -t 2>&1); then if ls \"$p\".*~ >/dev/null 2>&1; then "
                "cp -p -- \"$(ls -t \"$p\".*~ | head -1)\" \"$p\"; else rm -f -- \"$p\"; fi; "
                "printf 'fail2ban-client -t refused the jails, previous config restored: %s\\n' "
                "\"$out\" >&2; "
                "exit 3; fi\n";
            out.actions.push_back(std::move(a));
        }
        bool enabled = p.get("svc.enabled").value_or("") == "enabled";
        bool active = p.get("svc.active").value_or("") == "active";
        std::string svc;
        if (!enabled) {
            out.changes.emplace_back("enable fail2ban");
            svc += "systemctl enable fail2ban\n";
        }
        if (!active) out.changes.emplace_back("start fail2ban");
        // The package starts fail2ban before our jails exist (on Debian 12 that
        // start fails: no auth.log), so (re)start from a clean state and wait
        // until the server answers.
        if (!active || file.changed())
            svc +=
                "systemctl reset-failed fail2ban 2>/dev/null || true\nsystemctl restart fail2ban\n"
                "i=0; until fail2ban-client ping >/dev/null 2>&1; do i=$((i+1)); if [ $i -ge 100 "
                "]; then "
                "echo 'fail2ban did not answer within 20s' >&2; systemctl status fail2ban "
                "--no-pager >&2; exit 1; fi; "
                "sleep 0.2; done\n";
        if (!svc.empty())
            out.actions.push_back({"fail2ban service", "set -e\n" + svc, "", false, ""});
        return out;
    }
};

class auto_updates_module final : public module {
  public:
    bool enabled = true;
    static constexpr std::string_view apt_path = "/etc/apt/apt.conf.d/20auto-upgrades";
    static constexpr std::string_view dnf_timer = "dnf-automatic-install.timer";
    std::string_view kind() const override { return "auto_updates"; }
    std::string probe(const facts& f) const override {
        if (f.pkg_manager == "apt")
            return package_query_command("apt", {"unattended-upgrades"}, false).value_or("") +
                   probe_path("conf", apt_path, true);
        if (f.pkg_manager == "dnf" || f.pkg_manager == "yum")
            return package_query_command(f.pkg_manager, {"dnf-automatic"}, false).value_or("") +
                   fmt::format("echo \"timer.enabled $(systemctl is-enabled {} 2>/dev/null)\"\n",
                               dnf_timer);
        return {};
    }
    core::result<check_result> check(const facts& f, const probe_data& p) const override {
        check_result out;
        if (f.pkg_manager == "apt") {
            if (enabled) ensure_installed(f, {"unattended-upgrades"}, p, out);
            const char* v = enabled ? "1" : "0";
            file_write w{std::string(apt_path),
                         fmt::format("// Managed by tunnel (auto_updates "
                                     "step)\nAPT::Periodic::Update-Package-Lists \"{}\";\n"
                                     "APT::Periodic::Unattended-Upgrade \"{}\";\n",
                                     v, v),
                         "root",
                         "root",
                         "0644",
                         std::nullopt,
                         false,
                         false};
            if (auto c = check_file(w, read_path(p, "conf"), out); !c)
                return tl::unexpected(c.error());
            return out;
        }
        if (f.pkg_manager == "dnf" || f.pkg_manager == "yum") {
            bool on = p.get("timer.enabled").value_or("") == "enabled";
            if (enabled) {
                ensure_installed(f, {"dnf-automatic"}, p, out);
                if (!on) {
                    out.changes.push_back(fmt::format("enable {}", dnf_timer));
                    out.actions.push_back({"enable timer",
                                           fmt::format("systemctl enable --now {}\n", dnf_timer),
                                           "", false, ""});
                }
            } else if (on) {
                out.changes.push_back(fmt::format("disable {}", dnf_timer));
                out.actions.push_back({"disable timer",
                                       fmt::format("systemctl disable --now {}\n", dnf_timer), "",
                                       false, ""});
            }
            return out;
        }
        return core::fail(core::errc::invalid_argument,
                          fmt::format("auto_updates supports apt (unattended-upgrades) and dnf/yum "
                                      "(dnf-automatic) hosts; "
                                      "this one uses '{}'",
                                      f.pkg_manager.empty() ? "none" : f.pkg_manager));
    }
};

std::string scalar_text(const YAML::Node& n) {
    auto s = n.as<std::string>();
    bool b = false;
    if (YAML::convert<bool>::decode(n, b)) return b ? "true" : "false";
    return s;
}

}  // namespace

std::unique_ptr<module> parse_packages(core::yaml_reader& r, const YAML::Node& args,
                                       const std::string& path, const parse_context&) {
    if (!r.expect_map(args, path, {"names", "state", "update_cache"})) {
        if (!args || args.IsNull()) r.error(path, "needs names");
        return nullptr;
    }
    auto m = std::make_unique<packages_module>();
    if (args["names"]) {
        if (auto v = read_strings(r, args["names"], path + ".names")) {
            for (std::size_t i = 0; i < v->size(); ++i)
                (void)read_name(r, YAML::Node((*v)[i]), fmt::format("{}.names[{}]", path, i));
            m->names = *v;
            if (v->empty()) r.error(path + ".names", "must name at least one package");
        }
    } else {
        r.error(path + ".names", "is required");
    }
    if (args["state"])
        if (auto v =
                read_choice(r, args["state"], path + ".state", {"present", "absent", "latest"}))
            m->state = *v;
    if (args["update_cache"])
        m->update_cache =
            read_bool(r, args["update_cache"], path + ".update_cache").value_or(false);
    return m;
}

std::unique_ptr<module> parse_fail2ban(core::yaml_reader& r, const YAML::Node& args,
                                       const std::string& path, const parse_context&) {
    if (!r.expect_map(args, path, {"jails"})) {
        if (!args || args.IsNull())
            r.error(path, "needs jails (e.g. jails: {sshd: {enabled: true, maxretry: 5}})");
        return nullptr;
    }
    auto m = std::make_unique<fail2ban_module>();
    const auto& jails = args["jails"];
    if (!jails || !jails.IsMap()) {
        r.error(path + ".jails", "must be a mapping of jail name to its settings");
        return nullptr;
    }
    for (const auto& j : jails) {
        auto name = j.first.as<std::string>();
        auto jp = path + ".jails." + name;
        if (!is_ini_name(name)) r.error(jp, "jail names use letters, digits, _ and -");
        if (!j.second.IsMap()) {
            r.error(jp,
                    "must be a mapping of setting: value (enabled, port, maxretry, bantime, "
                    "findtime, ...)");
            continue;
        }
        std::vector<std::pair<std::string, std::string>> settings;
        for (const auto& kv : j.second) {
            auto key = kv.first.as<std::string>();
            if (!is_ini_name(key))
                r.error(jp + "." + key, "setting names use letters, digits, _ and -");
            if (kv.second.IsScalar()) {
                auto v = scalar_text(kv.second);
                if (v.find('\n') != std::string::npos) r.error(jp + "." + key, "must be one line");
                settings.emplace_back(key, v);
            } else if (kv.second.IsSequence()) {
                if (auto l = r.string_list(kv.second, jp + "." + key))
                    settings.emplace_back(key, fmt::format("{}", fmt::join(*l, ",")));
            } else {
                r.error(jp + "." + key, "must be a value or a list");
            }
        }
        m->jails.emplace_back(name, std::move(settings));
    }
    return m;
}

std::unique_ptr<module> parse_auto_updates(core::yaml_reader& r, const YAML::Node& args,
                                           const std::string& path, const parse_context&) {
    auto m = std::make_unique<auto_updates_module>();
    if (!args || args.IsNull()) return m;
    if (!r.expect_map(args, path, {"enabled"})) return nullptr;
    if (args["enabled"])
        m->enabled = read_bool(r, args["enabled"], path + ".enabled").value_or(true);
    return m;
}

}  // namespace tunnel::ops
