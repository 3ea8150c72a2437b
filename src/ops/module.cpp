#include "ops/module.hpp"

#include <algorithm>
#include <array>

#include <fmt/format.h>
#include <openssl/evp.h>

#include "core/shell_quote.hpp"
#include "ops/diff.hpp"
#include "ops/modules.hpp"
#include "ops/safe_path.hpp"

namespace tunnel::ops {

using core::shell_quote;

probe_data::probe_data(std::string_view text) {
    while (!text.empty()) {
        auto nl = text.find('\n');
        auto line = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        if (line.empty()) continue;
        auto sp = line.find(' ');
        if (sp == std::string_view::npos)
            values_.emplace(std::string(line), std::string());
        else
            values_.emplace(std::string(line.substr(0, sp)), std::string(line.substr(sp + 1)));
    }
}

std::optional<std::string> probe_data::get(std::string_view key) const {
    auto it = values_.find(key);
    if (it == values_.end()) return std::nullopt;
    return it->second;
}

std::vector<std::string> probe_data::all(std::string_view key) const {
    std::vector<std::string> out;
    auto [b, e] = values_.equal_range(key);
    for (auto it = b; it != e; ++it) out.push_back(it->second);
    return out;
}

std::string probe_data::decoded(std::string_view key) const {
    return base64_decode(get(key).value_or(""));
}

std::string base64_decode(std::string_view in) {
    static const auto table = [] {
        std::array<int, 256> t{};
        t.fill(-1);
        const char* chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(chars[i])] = i;
        return t;
    }();
    std::string out;
    out.reserve(in.size() * 3 / 4);
    unsigned buf = 0;
    int bits = 0;
    for (char c : in) {
        int v = table[static_cast<unsigned char>(c)];
        if (v < 0) continue;  // '=', whitespace
        buf = (buf << 6) | static_cast<unsigned>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((buf >> bits) & 0xff));
        }
    }
    return out;
}

namespace {
std::string sha256_hex(std::string_view data) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned len = 0;
    EVP_Digest(data.data(), data.size(), md.data(), &len, EVP_sha256(), nullptr);
    std::string out;
    for (unsigned i = 0; i < len; ++i) out += fmt::format("{:02x}", md[i]);
    return out;
}

std::string normal_mode(std::string_view m) {
    while (m.size() > 1 && m.front() == '0') m.remove_prefix(1);
    return std::string(m);
}
}  // namespace

std::string probe_path(std::string_view tag, std::string_view path, bool with_content,
                       bool raw_path) {
    // No subshell (a fork each): tw_probe leaves the shell in PATH's directory, and every
    // probe uses absolute paths; the runner runs each step's probe in a subshell of its own.
    return fmt::format("tw_probe {} {}{}\n", tag, raw_path ? std::string(path) : shell_quote(path),
                       with_content ? " content" : "");
}

path_state read_path(const probe_data& p, std::string_view tag) {
    path_state st;
    if (auto why = p.get(fmt::format("{}.refused", tag))) st.refused = *why;
    if (auto who = p.get(fmt::format("{}.untrusted", tag))) st.others_can_change = *who;
    auto stat = p.get(fmt::format("{}.stat", tag));
    if (!stat) return st;
    st.exists = true;
    // "MODE OWNER GROUP SIZE TYPE WORDS..."
    std::vector<std::string> f;
    std::string_view rest = *stat;
    for (int i = 0; i < 4 && !rest.empty(); ++i) {
        auto sp = rest.find(' ');
        f.emplace_back(rest.substr(0, sp));
        rest.remove_prefix(sp == std::string_view::npos ? rest.size() : sp + 1);
    }
    if (f.size() == 4) {
        st.mode = f[0];
        st.owner = f[1];
        st.group = f[2];
        st.size = std::strtoull(f[3].c_str(), nullptr, 10);
        st.type = std::string(rest);
    }
    if (auto b = p.get(fmt::format("{}.b64", tag))) st.content = base64_decode(*b);
    if (auto h = p.get(fmt::format("{}.sha256", tag))) st.sha256 = *h;
    return st;
}

namespace {
// chown/chgrp of `target` (a name in the current directory).
std::string ownership_commands(const std::optional<std::string>& owner,
                               const std::optional<std::string>& group, std::string_view target) {
    if (owner && group)
        return fmt::format("chown -- {} {}\n", shell_quote(*owner + ":" + *group), target);
    if (owner) return fmt::format("chown -- {} {}\n", shell_quote(*owner), target);
    if (group) return fmt::format("chgrp -- {} {}\n", shell_quote(*group), target);
    return {};
}
}  // namespace

action write_file_action(const file_write& w) {
    action a;
    a.description = fmt::format("write {}", w.path);
    a.input = w.content;
    const auto [dir, name] = split_path(w.path);
    // p: the target (fail2ban's restore step uses it); t: the new file (for validate).
    std::string s = fmt::format(
        "set -e\np={}\nn={}\ntw_enter {}{} || tw_die\ntw_replaceable \"$n\" || tw_die\n"
        "tw_stage || tw_die\ntrap tw_unstage EXIT\ncat > ./new\nt=$(pwd -P)/new\n",
        shell_quote(w.path), shell_quote(name), shell_quote(dir), w.make_parent ? " create" : "");
    // Unspecified owner/group/mode: keep the current file's, else root's defaults.
    if (w.owner || w.group) {
        s += ownership_commands(w.owner, w.group, "./new");
        if (!w.mode) s += "tw_ref \"$n\"\n";
    } else {
        s += "tw_ref \"$n\"\nif [ -n \"$tw_ref_owner\" ]; then chown -- \"$tw_ref_owner\" ./new; "
             "fi\n";
    }
    if (w.mode)
        s += fmt::format("chmod -- {} ./new\n", shell_quote(*w.mode));
    else
        s += "chmod -- \"${tw_ref_mode:-644}\" ./new\n";
    if (w.validate) {
        std::string cmd = *w.validate;
        for (auto at = cmd.find("%s"); at != std::string::npos; at = cmd.find("%s", at + 4))
            cmd.replace(at, 2, "\"$t\"");
        s += fmt::format(
            "if ! out=$({} 2>&1); then printf 'validation failed (%s), nothing changed: %s\\n' {} "
            "\"$out\" >&2; exit 3; fi\n",
            cmd, shell_quote(*w.validate));
    }
    if (w.backup) s += "tw_backup \"$n\"\n";
    s += "mv -fT -- ./new \"../$n\"\ntw_unstage\ntrap - EXIT\n";
    a.script = std::move(s);
    return a;
}

std::string directory_script(const std::string& path, const std::optional<std::string>& owner,
                             const std::optional<std::string>& group,
                             const std::optional<std::string>& mode) {
    std::string s = fmt::format("set -e\ntw_enter {} create || tw_die\n", shell_quote(path));
    if (mode) s += fmt::format("chmod -- {} .\n", shell_quote(*mode));
    s += ownership_commands(owner, group, ".");
    return s;
}

std::string remove_script(const std::string& path, bool recursive, bool backup) {
    const auto [dir, name] = split_path(path);
    std::string s = fmt::format(
        "set -e\nn={}\nif ! tw_enter {}; then [ -n \"$tw_missing\" ] && exit 0; tw_die; fi\n",
        shell_quote(name), shell_quote(dir));
    if (backup)
        s += "if [ -f \"./$n\" ] && [ ! -L \"./$n\" ]; then tw_stage || tw_die; trap tw_unstage "
             "EXIT; tw_backup \"$n\"; tw_unstage; trap - EXIT; fi\n";
    s += fmt::format("rm -{}f -- \"./$n\"\n", recursive ? "r" : "");
    return s;
}

core::result<void> check_file(const file_write& want, const path_state& have, check_result& out) {
    if (have.refused)
        return core::fail(core::errc::denied, fmt::format("{}: {}", want.path, *have.refused));
    if (have.exists && have.type == "directory")
        return core::fail(
            core::errc::invalid_argument,
            fmt::format("{} is a directory; a file cannot replace it (remove it first)",
                        want.path));
    if (have.exists && have.type != "regular file" && have.type != "regular empty file") {
        out.changes.push_back(fmt::format("replace {} ({}) with a file", want.path, have.type));
        out.actions.push_back(write_file_action(want));
        return {};
    }
    bool content_differs = !have.exists;
    if (have.exists) {
        if (have.content)
            content_differs = *have.content != want.content;
        else
            content_differs = have.sha256.value_or("") != sha256_hex(want.content);
    }
    if (!have.exists) {
        out.changes.push_back(fmt::format("create {}", want.path));
        out.diff += unified_diff("", want.content, "/dev/null", want.path);
        out.actions.push_back(write_file_action(want));
        return {};
    }
    if (content_differs) {
        out.changes.push_back(fmt::format("update content of {}", want.path));
        if (have.content)
            out.diff += unified_diff(*have.content, want.content, want.path + " (before)",
                                     want.path + " (after)");
        else
            out.diff += fmt::format(
                "--- {} (before)\n+++ {} (after)\n(large file: sha256 {} -> {})\n", want.path,
                want.path, have.sha256.value_or("?"), sha256_hex(want.content));
    }
    bool attributes_differ = false;
    if (want.mode && normal_mode(*want.mode) != have.mode) {
        out.changes.push_back(
            fmt::format("mode of {}: {} -> {}", want.path, have.mode, normal_mode(*want.mode)));
        attributes_differ = true;
    }
    if (want.owner && *want.owner != have.owner) {
        out.changes.push_back(
            fmt::format("owner of {}: {} -> {}", want.path, have.owner, *want.owner));
        attributes_differ = true;
    }
    if (want.group && *want.group != have.group) {
        out.changes.push_back(
            fmt::format("group of {}: {} -> {}", want.path, have.group, *want.group));
        attributes_differ = true;
    }
    if (content_differs) {
        out.actions.push_back(write_file_action(want));
    } else if (attributes_differ) {
        // chmod by path follows symbolic links and races with renames in a directory others
        // can change; writing the same content with the new attributes does neither.
        auto same = want;
        same.backup = false;
        auto a = write_file_action(same);
        a.description = fmt::format("set attributes of {}", want.path);
        out.actions.push_back(std::move(a));
    }
    return {};
}

std::optional<bool> read_bool(core::yaml_reader& r, const YAML::Node& node,
                              const std::string& path) {
    bool v = false;
    if (node.IsScalar() && YAML::convert<bool>::decode(node, v)) return v;
    r.error(path, "must be true or false");
    return std::nullopt;
}

std::optional<std::string> read_choice(core::yaml_reader& r, const YAML::Node& node,
                                       const std::string& path,
                                       std::initializer_list<std::string_view> allowed) {
    auto s = r.string(node, path);
    if (!s) return s;
    if (std::find(allowed.begin(), allowed.end(), *s) == allowed.end()) {
        r.error(path, fmt::format("'{}' is not one of: {}", *s, fmt::join(allowed, ", ")));
        return std::nullopt;
    }
    return s;
}

std::optional<std::vector<std::string>> read_strings(core::yaml_reader& r, const YAML::Node& node,
                                                     const std::string& path) {
    if (node.IsScalar()) return std::vector<std::string>{node.as<std::string>()};
    return r.string_list(node, path);
}

std::optional<std::string> read_mode(core::yaml_reader& r, const YAML::Node& node,
                                     const std::string& path) {
    auto s = r.string(node, path);
    if (!s) return s;
    std::string_view v = *s;
    if (v.size() > 1 && v[0] == '0' && (v[1] == 'o' || v[1] == 'O')) v.remove_prefix(2);
    bool ok = !v.empty() && v.size() <= 5 &&
              std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '7'; });
    if (ok) {
        auto n = std::strtoul(std::string(v).c_str(), nullptr, 8);
        ok = n <= 07777;
        if (ok) return fmt::format("{:04o}", n);
    }
    r.error(path, fmt::format("'{}' is not an octal mode such as \"0644\" (quote it in YAML)", *s));
    return std::nullopt;
}

std::optional<std::string> read_name(core::yaml_reader& r, const YAML::Node& node,
                                     const std::string& path) {
    auto s = r.string(node, path);
    if (!s) return s;
    bool ok = !s->empty() && s->front() != '-' && s->size() <= 256 &&
              std::all_of(s->begin(), s->end(), [](char c) {
                  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' ||
                         c == '.' || c == '@' || c == '+' || c == ':';
              });
    if (!ok) {
        r.error(path,
                fmt::format(
                    "'{}' is not a valid name (letters, digits, _ - . @ + : ; not starting with -)",
                    *s));
        return std::nullopt;
    }
    return s;
}

std::optional<std::string> read_path(core::yaml_reader& r, const YAML::Node& node,
                                     const std::string& path) {
    auto s = r.string(node, path);
    if (!s) return s;
    if (s->empty() || s->front() != '/' || s->find('\n') != std::string::npos ||
        s->find('\0') != std::string::npos || *s == "/") {
        r.error(path, fmt::format("'{}' must be an absolute path (not /)", *s));
        return std::nullopt;
    }
    return s;
}

std::string plan_relative(const parse_context& ctx, const std::string& src) {
    return (!src.empty() && src.front() == '/') || ctx.plan_dir.empty() ? src
                                                                        : ctx.plan_dir + "/" + src;
}

void read_file_attributes(core::yaml_reader& r, const YAML::Node& args, const std::string& path,
                          file_write& want) {
    if (args["owner"]) want.owner = read_name(r, args["owner"], path + ".owner");
    if (args["group"]) want.group = read_name(r, args["group"], path + ".group");
    if (args["mode"]) want.mode = read_mode(r, args["mode"], path + ".mode");
    if (args["backup"])
        want.backup = read_bool(r, args["backup"], path + ".backup").value_or(false);
    if (args["validate"]) {
        if (auto v = r.string(args["validate"], path + ".validate")) {
            if (v->find("%s") == std::string::npos)
                r.error(path + ".validate", "must contain %s (the new file's path)");
            want.validate = *v;
        }
    }
}

}  // namespace tunnel::ops

namespace tunnel::ops {
namespace {
struct registry_entry {
    std::string_view name;
    module_parser parse;
};
constexpr registry_entry registry[] = {
    {"user", parse_user},           {"authorized_key", parse_authorized_key},
    {"directory", parse_directory}, {"file", parse_file},
    {"template", parse_template},   {"sudoers", parse_sudoers},
    {"packages", parse_packages},   {"service", parse_service},
    {"sshd", parse_sshd},           {"firewall", parse_firewall},
    {"fail2ban", parse_fail2ban},   {"auto_updates", parse_auto_updates},
    {"command", parse_command},
};
}  // namespace

module_parser find_module(std::string_view name) {
    for (const auto& e : registry)
        if (e.name == name) return e.parse;
    return nullptr;
}

std::vector<std::string_view> module_names() {
    std::vector<std::string_view> out;
    for (const auto& e : registry) out.push_back(e.name);
    return out;
}

}  // namespace tunnel::ops
