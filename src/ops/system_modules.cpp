// `service` (systemd) and `sshd`.
#include <algorithm>

#include <fmt/format.h>

#include "core/duration.hpp"
#include "core/shell_quote.hpp"
#include "ops/modules.hpp"

namespace tunnel::ops {

using core::shell_quote;

std::string render_unit(const unit_fields& u) {
    std::string s = "# Managed by tunnel (service step); local edits are overwritten.\n";
    bool first = true;
    auto section = [&](std::string_view name,
                       const std::vector<std::pair<std::string, std::string>>& kv) {
        if (kv.empty()) return;
        if (!first) s += "\n";
        first = false;
        s += fmt::format("[{}]\n", name);
        for (const auto& [k, v] : kv) s += fmt::format("{}={}\n", k, v);
    };
    section("Unit", u.unit);
    section("Service", u.service);
    section("Install", u.install);
    return s;
}

std::string render_sshd_settings(const std::vector<std::pair<std::string, std::string>>& settings) {
    std::string s = "# Managed by tunnel (sshd step); local edits are overwritten.\n";
    for (const auto& [k, v] : settings) s += fmt::format("{} {}\n", k, v);
    return s;
}

namespace {

// sshd re-executes itself on SIGHUP; until its old listening socket is gone a new
// connection is still served under the old config, so the fresh-login check that
// follows could pass against a config that locks everyone out. Wait (up to 5 s) for the
// listening sockets (their inodes) to change.
std::string reload_sshd_script() {
    return "sshd_socks() { ss -ltnHep 2>/dev/null | sed -n '/\"sshd\"/s/.* "
           "ino:\\([0-9]*\\).*/\\1/p' | "
           "sort | tr '\\n' ' '; }\nsshd_before=$(sshd_socks)\n"
           "if [ -d /run/systemd/system ]; then systemctl reload ssh 2>/dev/null || systemctl "
           "reload sshd; else kill -HUP \"$(cat /run/sshd.pid)\"; fi\n"
           "if [ -n \"$sshd_before\" ]; then i=0; while [ $i -lt 100 ] && [ \"$(sshd_socks)\" = "
           "\"$sshd_before\" ]; do sleep 0.05; i=$((i + 1)); done; fi\n";
}

class service_module final : public module {
  public:
    std::string name;  // with its .service (or other) suffix
    std::optional<std::string> state;
    std::optional<bool> enabled;
    std::optional<unit_fields> unit;
    std::optional<std::string> wait_state;
    std::chrono::milliseconds wait_timeout{30'000};

    [[nodiscard]] std::string unit_path() const { return "/etc/systemd/system/" + name; }
    std::string_view kind() const override { return "service"; }
    std::string probe(const facts&) const override {
        std::string s = fmt::format(
            "systemctl show -p LoadState -p ActiveState -p UnitFileState -- {} 2>/dev/null | "
            "sed 's/=/ /; s/^/svc./'\n",
            shell_quote(name));
        if (unit) s += probe_path("unit", unit_path(), true);
        return s;
    }
    core::result<check_result> check(const facts& f, const probe_data& p) const override {
        check_result out;
        if (f.init_system != "systemd")
            return core::fail(
                core::errc::invalid_argument,
                fmt::format("service: the host runs {} as init, not systemd", f.init_system));
        const auto q = shell_quote(name);
        bool unit_changed = false;
        std::string script = "set -e\n";
        if (unit) {
            file_write w{unit_path(), render_unit(*unit), "root", "root",
                         "0644",      std::nullopt,       false,  false};
            check_result file;
            if (auto c = check_file(w, read_path(p, "unit"), file); !c)
                return tl::unexpected(c.error());
            unit_changed = file.changed();
            for (auto& c : file.changes) out.changes.push_back(c);
            out.diff = file.diff;
            for (auto& a : file.actions) out.actions.push_back(std::move(a));
            if (unit_changed) {
                out.changes.emplace_back("systemctl daemon-reload");
                script += "systemctl daemon-reload\n";
            }
        } else if (p.get("svc.LoadState").value_or("") == "not-found") {
            return core::fail(
                core::errc::not_found,
                fmt::format("unit {} is not installed on the host (give unit: fields to create it)",
                            name));
        }
        // A unit that does not exist yet (created above) reads as inactive/disabled.
        auto active = unit_changed && p.get("svc.LoadState").value_or("") == "not-found"
                          ? std::string("inactive")
                          : p.get("svc.ActiveState").value_or("inactive");
        auto file_state = p.get("svc.UnitFileState").value_or("");
        if (enabled) {
            bool is_enabled = file_state == "enabled" || file_state == "enabled-runtime";
            if (*enabled && !is_enabled && file_state != "static") {
                out.changes.push_back(fmt::format("enable {}", name));
                script += fmt::format("systemctl enable -- {}\n", q);
            } else if (!*enabled && is_enabled) {
                out.changes.push_back(fmt::format("disable {}", name));
                script += fmt::format("systemctl disable -- {}\n", q);
            }
        }
        bool running = active == "active" || active == "activating" || active == "reloading";
        if (state == "started") {
            if (!running) {
                out.changes.push_back(fmt::format("start {}", name));
                script += fmt::format("systemctl start -- {}\n", q);
            } else if (unit_changed) {
                out.changes.push_back(fmt::format("restart {} (unit file changed)", name));
                script += fmt::format("systemctl restart -- {}\n", q);
            }
        } else if (state == "stopped") {
            if (running) {
                out.changes.push_back(fmt::format("stop {}", name));
                script += fmt::format("systemctl stop -- {}\n", q);
            }
        } else if (state == "restarted") {
            out.changes.push_back(fmt::format("restart {}", name));
            script += fmt::format("systemctl restart -- {}\n", q);
        } else if (state == "reloaded") {
            out.changes.push_back(fmt::format("reload {}", name));
            script += running ? fmt::format("systemctl reload -- {}\n", q)
                              : fmt::format("systemctl start -- {}\n", q);
        }
        if (wait_state && out.changed()) {
            auto secs = std::max<long long>(1, (wait_timeout.count() + 999) / 1000);
            script += fmt::format(
                "end=$(( $(date +%s) + {0} )); while :; do s=$(systemctl is-active -- {1} || "
                "true); "
                "[ \"$s\" = {2} ] && break; if [ \"$(date +%s)\" -ge \"$end\" ]; then "
                "printf '%s is %s, not %s, after %ss\\n' {1} \"$s\" {2} {0} >&2; exit 1; fi; sleep "
                "0.2; done\n",
                secs, q, shell_quote(*wait_state));
        }
        if (script != "set -e\n")
            out.actions.push_back({fmt::format("systemctl {}", name), script, "", false, ""});
        return out;
    }
};

class sshd_module final : public module {
  public:
    std::vector<std::pair<std::string, std::string>> settings;
    std::string file_name = "00-tunnel.conf";
    [[nodiscard]] std::string path() const { return "/etc/ssh/sshd_config.d/" + file_name; }
    std::string_view kind() const override { return "sshd"; }
    std::string probe(const facts&) const override {
        return probe_path("conf", path(), true) +
               "grep -Eiq '^[[:space:]]*Include[[:space:]]+/etc/ssh/sshd_config\\.d/\\*\\.conf' "
               "/etc/ssh/sshd_config "
               "&& echo sshd.include\n";
    }
    core::result<check_result> check(const facts&, const probe_data& p) const override {
        check_result out;
        file_write w{
            path(), render_sshd_settings(settings), "root", "root", "0644", std::nullopt, false,
            true};
        if (auto c = check_file(w, read_path(p, "conf"), out); !c) return tl::unexpected(c.error());
        if (!out.changed()) return out;
        if (!p.has("sshd.include"))
            return core::fail(
                core::errc::invalid_argument,
                "sshd: /etc/ssh/sshd_config has no 'Include /etc/ssh/sshd_config.d/*.conf' line, "
                "so a "
                "drop-in would have no effect; add it at the top of sshd_config first");
        // Write, `sshd -t`, reload; the runner then logs in afresh and runs `rollback` if it
        // cannot.
        action a;
        a.description = fmt::format("sshd drop-in {}", path());
        a.input = w.content;
        const auto q = shell_quote(path());
        const auto previous =
            shell_quote("/etc/ssh/sshd_config.d/." + file_name + ".tunnel-previous");
        a.script = fmt::format(
            "set -e\np={0}\nd=/etc/ssh/sshd_config.d\nb={1}\nmkdir -p -- \"$d\"\n"
            "if [ -e \"$p\" ]; then cp -p -- \"$p\" \"$b\"; else rm -f -- \"$b\"; fi\n"
            "t=$(mktemp \"$d/.tunnel-XXXXXX\")\ncat > \"$t\"\nchmod 644 -- \"$t\"\n"
            "mv -fT -- \"$t\" \"$p\"\n"
            "if ! out=$(sshd -t 2>&1); then if [ -e \"$b\" ]; then mv -fT -- \"$b\" \"$p\"; "
            "else rm -f -- \"$p\"; fi\n"
            "  printf 'sshd -t refused the new settings; previous config kept: %s\\n' \"$out\" "
            ">&2; exit 3; fi\n{2}",
            q, previous, reload_sshd_script());
        a.verify_fresh_login = true;
        a.rollback = fmt::format(
            "p={0}\nb={1}\n"
            "if [ -e \"$b\" ]; then mv -fT -- \"$b\" \"$p\"; else rm -f -- \"$p\"; fi\n{2}",
            q, previous, reload_sshd_script());
        out.actions = {std::move(a)};
        return out;
    }
};

}  // namespace

bool is_sshd_dropin_name(std::string_view s) {
    constexpr std::string_view suffix = ".conf";
    return s.size() > suffix.size() && s.size() <= 255 && s.front() != '.' &&
           s.substr(s.size() - suffix.size()) == suffix &&
           std::all_of(s.begin(), s.end(), [](char c) {
               return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
                      c == '-';
           });
}

namespace {

bool is_word(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c));
    });
}

std::optional<std::string> joined(core::yaml_reader& r, const YAML::Node& n,
                                  const std::string& path, std::string_view sep) {
    if (n.IsSequence()) {
        auto l = r.string_list(n, path);
        if (!l) return std::nullopt;
        return fmt::format("{}", fmt::join(*l, sep));
    }
    return r.string(n, path);
}

}  // namespace

std::unique_ptr<module> parse_service(core::yaml_reader& r, const YAML::Node& args,
                                      const std::string& path, const parse_context&) {
    if (!r.expect_map(args, path, {"name", "state", "enabled", "unit", "wait_for", "timeout"})) {
        if (!args || args.IsNull()) r.error(path, "needs at least name");
        return nullptr;
    }
    auto m = std::make_unique<service_module>();
    if (args["name"]) {
        if (auto v = read_name(r, args["name"], path + ".name")) {
            m->name = *v;
            if (m->name.find('.') == std::string::npos) m->name += ".service";
        }
    } else {
        r.error(path + ".name", "is required");
    }
    if (args["state"])
        m->state = read_choice(r, args["state"], path + ".state",
                               {"started", "stopped", "restarted", "reloaded"});
    if (args["enabled"]) m->enabled = read_bool(r, args["enabled"], path + ".enabled");
    if (args["wait_for"])
        m->wait_state =
            read_choice(r, args["wait_for"], path + ".wait_for", {"active", "inactive", "failed"});
    if (args["timeout"]) {
        if (!args["wait_for"]) r.error(path + ".timeout", "only applies with wait_for");
        if (auto d = r.duration(args["timeout"], path + ".timeout")) m->wait_timeout = *d;
    }
    if (const auto& u = args["unit"]) {
        const auto up = path + ".unit";
        if (r.expect_map(u, up,
                         {"Description", "Documentation", "After", "Wants", "Requires", "Type",
                          "ExecStart", "ExecStartPre", "ExecReload", "ExecStop", "User", "Group",
                          "WorkingDirectory", "Environment", "EnvironmentFile", "Restart",
                          "RestartSec", "TimeoutStopSec", "WantedBy"})) {
            unit_fields f;
            auto put = [&](std::vector<std::pair<std::string, std::string>>& sec, const char* key,
                           std::string_view sep) {
                if (!u[key]) return;
                if (auto v = joined(r, u[key], up + "." + key, sep)) {
                    if (v->find('\n') != std::string::npos)
                        r.error(up + "." + key, "must be one line");
                    sec.emplace_back(key, *v);
                }
            };
            for (const char* k : {"Description", "Documentation", "After", "Wants", "Requires"})
                put(f.unit, k, " ");
            for (const char* k :
                 {"Type", "ExecStartPre", "ExecStart", "ExecReload", "ExecStop", "User", "Group",
                  "WorkingDirectory", "EnvironmentFile", "Restart", "RestartSec", "TimeoutStopSec"})
                put(f.service, k, " ");
            if (const auto& env = u["Environment"]) {
                auto add = [&](const std::string& k, const std::string& v) {
                    if (!core::is_valid_env_name(k))
                        r.error(up + ".Environment." + k, "is not a valid variable name");
                    if (v.find('"') != std::string::npos || v.find('\n') != std::string::npos ||
                        v.find('\\') != std::string::npos)
                        r.error(up + ".Environment." + k,
                                "must not contain quotes, backslashes or newlines");
                    f.service.emplace_back("Environment", fmt::format("\"{}={}\"", k, v));
                };
                if (env.IsMap()) {
                    for (const auto& kv : env)
                        add(kv.first.as<std::string>(), kv.second.as<std::string>());
                } else if (auto l = read_strings(r, env, up + ".Environment")) {
                    for (const auto& item : *l) {
                        auto eq = item.find('=');
                        if (eq == std::string::npos)
                            r.error(up + ".Environment",
                                    fmt::format("'{}' is not NAME=value", item));
                        else
                            add(item.substr(0, eq), item.substr(eq + 1));
                    }
                }
            }
            if (!u["ExecStart"]) r.error(up + ".ExecStart", "is required to create a unit");
            if (u["WantedBy"]) {
                if (auto v = joined(r, u["WantedBy"], up + ".WantedBy", " "))
                    f.install.emplace_back("WantedBy", *v);
            } else {
                f.install.emplace_back("WantedBy", "multi-user.target");
            }
            m->unit = std::move(f);
        }
    }
    return m;
}

std::unique_ptr<module> parse_sshd(core::yaml_reader& r, const YAML::Node& args,
                                   const std::string& path, const parse_context&) {
    if (!r.expect_map(args, path, {"settings", "file"})) {
        if (!args || args.IsNull())
            r.error(path, "needs settings (e.g. settings: {PasswordAuthentication: false})");
        return nullptr;
    }
    auto m = std::make_unique<sshd_module>();
    if (args["file"]) {
        if (auto v = r.string(args["file"], path + ".file")) {
            // The name goes into shell commands run as root: letters, digits, '.', '_', '-' only.
            if (!is_sshd_dropin_name(*v))
                r.error(path + ".file",
                        fmt::format("'{}' is not a drop-in file name: use letters, digits, '.', "
                                    "'_' and '-', end it in .conf, do not start it with '.' (the "
                                    "file is created in /etc/ssh/sshd_config.d)",
                                    *v));
            m->file_name = *v;
        }
    }
    const auto& s = args["settings"];
    if (!s || !s.IsMap() || s.size() == 0) {
        r.error(path + ".settings", "must be a non-empty mapping of sshd keyword: value");
        return nullptr;
    }
    for (const auto& kv : s) {
        auto key = kv.first.as<std::string>();
        auto kp = path + ".settings." + key;
        if (!is_word(key) || key == "Match" || key == "Include") {
            r.error(
                kp,
                "must be an sshd_config keyword (Match and Include blocks are not supported here)");
            continue;
        }
        std::string lower;
        for (char c : key) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        const bool comma = lower == "ciphers" || lower == "kexalgorithms" || lower == "macs" ||
                           lower == "hostkeyalgorithms" || lower == "pubkeyacceptedalgorithms" ||
                           lower == "casignaturealgorithms";
        std::optional<std::string> v;
        if (kv.second.IsScalar()) {
            bool b = false;
            auto text = kv.second.as<std::string>();
            if (text != "0" && text != "1" && YAML::convert<bool>::decode(kv.second, b))
                v = b ? "yes" : "no";
            else
                v = text;
        } else {
            v = joined(r, kv.second, kp, comma ? "," : " ");
        }
        if (!v) continue;
        if (v->empty() || v->find('\n') != std::string::npos) {
            r.error(kp, "must be a non-empty single-line value");
            continue;
        }
        m->settings.emplace_back(key, *v);
    }
    return m;
}

}  // namespace tunnel::ops
