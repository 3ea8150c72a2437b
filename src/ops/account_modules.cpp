// `user`, `authorized_key` and `sudoers`.
#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "core/shell_quote.hpp"
#include "ops/diff.hpp"
#include "ops/modules.hpp"

namespace tunnel::ops {

using core::shell_quote;

namespace {

std::vector<std::string> split_words(std::string_view s) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
        auto start = i;
        while (i < s.size() && s[i] != ' ' && s[i] != '\t') ++i;
        if (i > start) out.emplace_back(s.substr(start, i - start));
    }
    return out;
}

std::vector<std::string> split_on(std::string_view s, char sep) {
    std::vector<std::string> out;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= s.size(); ++i)
        if (i == s.size() || s[i] == sep) {
            out.emplace_back(s.substr(start, i - start));
            start = i + 1;
        }
    return out;
}

class user_module final : public module {
  public:
    std::string name;
    std::string state = "present";
    std::optional<std::string> shell, home;
    std::optional<std::vector<std::string>> groups;
    bool append = false;
    bool system = false;
    bool remove = false;  // state absent: also remove the home directory

    std::string_view kind() const override { return "user"; }
    std::string probe(const facts&) const override {
        auto q = shell_quote(name);
        return fmt::format(
            "getent passwd {0} | sed 's/^/u.pw /'; id -nG {0} 2>/dev/null | sed 's/^/u.groups /'; "
            "id -gn {0} 2>/dev/null | sed 's/^/u.primary /'\n",
            q);
    }
    core::result<check_result> check(const facts&, const probe_data& p) const override {
        check_result out;
        auto pw = p.get("u.pw");
        const auto q = shell_quote(name);
        if (state == "absent") {
            if (pw) {
                out.changes.push_back(fmt::format("remove user {}", name));
                out.actions.push_back({fmt::format("remove user {}", name),
                                       fmt::format("userdel {}{}\n", remove ? "-r " : "", q), "",
                                       false, ""});
            }
            return out;
        }
        if (!pw) {
            std::string cmd = "useradd";
            if (system) cmd += " -r";
            cmd += system && !home ? " -M" : " -m";
            if (home) cmd += " -d " + shell_quote(*home);
            if (shell) cmd += " -s " + shell_quote(*shell);
            if (groups && !groups->empty())
                cmd += " -G " + shell_quote(fmt::format("{}", fmt::join(*groups, ",")));
            cmd += " -- " + q;
            out.changes.push_back(fmt::format("create user {}", name));
            out.actions.push_back({fmt::format("create user {}", name), cmd + "\n", "", false, ""});
            return out;
        }
        auto fields = split_on(*pw, ':');  // name:x:uid:gid:gecos:home:shell
        std::string have_home = fields.size() > 5 ? fields[5] : "";
        std::string have_shell = fields.size() > 6 ? fields[6] : "";
        std::string s = "set -e\n";
        if (shell && *shell != have_shell) {
            out.changes.push_back(fmt::format("shell of {}: {} -> {}", name, have_shell, *shell));
            s += fmt::format("usermod -s {} -- {}\n", shell_quote(*shell), q);
        }
        if (home && *home != have_home) {
            out.changes.push_back(fmt::format("home of {}: {} -> {}", name, have_home, *home));
            s += fmt::format("usermod -d {} -m -- {}\n", shell_quote(*home), q);
        }
        if (groups) {
            auto primary = p.get("u.primary").value_or("");
            std::set<std::string> have;
            for (auto& g : split_words(p.get("u.groups").value_or("")))
                if (g != primary) have.insert(g);
            std::set<std::string> want(groups->begin(), groups->end());
            want.erase(primary);
            std::vector<std::string> add, drop;
            std::set_difference(want.begin(), want.end(), have.begin(), have.end(),
                                std::back_inserter(add));
            if (!append)
                std::set_difference(have.begin(), have.end(), want.begin(), want.end(),
                                    std::back_inserter(drop));
            if (!add.empty())
                out.changes.push_back(
                    fmt::format("add {} to groups {}", name, fmt::join(add, ", ")));
            if (!drop.empty())
                out.changes.push_back(
                    fmt::format("remove {} from groups {}", name, fmt::join(drop, ", ")));
            if (append && !add.empty())
                s += fmt::format("usermod -a -G {} -- {}\n",
                                 shell_quote(fmt::format("{}", fmt::join(add, ","))), q);
            else if (!add.empty() || !drop.empty())
                s += fmt::format("usermod -G {} -- {}\n",
                                 shell_quote(fmt::format("{}", fmt::join(want, ","))), q);
        }
        if (out.changed())
            out.actions.push_back({fmt::format("update user {}", name), s, "", false, ""});
        return out;
    }
};

// One authorized_keys line, split into options, key type, key blob and comment.
struct key_line {
    std::string options;
    std::string type;
    std::string blob;
    std::string comment;
    [[nodiscard]] std::string id() const { return type + " " + blob; }
};

bool is_key_type(std::string_view w) {
    return w.rfind("ssh-", 0) == 0 || w.rfind("ecdsa-sha2-", 0) == 0 || w.rfind("sk-", 0) == 0;
}

// Options may contain quoted spaces: find the type word outside quotes.
std::optional<key_line> parse_key_line(std::string_view line) {
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty() || line.front() == '#') return std::nullopt;
    bool quoted = false;
    std::size_t word_start = 0;
    for (std::size_t i = 0; i <= line.size(); ++i) {
        if (i < line.size() && line[i] == '"') quoted = !quoted;
        if (i == line.size() || (!quoted && (line[i] == ' ' || line[i] == '\t'))) {
            auto word = line.substr(word_start, i - word_start);
            if (is_key_type(word)) {
                key_line k;
                k.options = std::string(line.substr(0, word_start));
                while (!k.options.empty() && (k.options.back() == ' ' || k.options.back() == '\t'))
                    k.options.pop_back();
                k.type = std::string(word);
                auto rest = split_words(line.substr(i));
                if (rest.empty()) return std::nullopt;
                k.blob = rest[0];
                auto c = line.substr(i);
                auto at = c.find(rest[0]);
                c.remove_prefix(at + rest[0].size());
                while (!c.empty() && (c.front() == ' ' || c.front() == '\t')) c.remove_prefix(1);
                k.comment = std::string(c);
                return k;
            }
            word_start = i + 1;
        }
    }
    return std::nullopt;
}

std::string render_key(const key_line& k) {
    std::string s = k.options.empty() ? "" : k.options + " ";
    s += k.type + " " + k.blob;
    if (!k.comment.empty()) s += " " + k.comment;
    return s;
}

class authorized_key_module final : public module {
  public:
    std::string user;
    std::vector<key_line> keys;
    std::string state = "present";
    bool exclusive = false;
    std::optional<std::string> options;

    std::string_view kind() const override { return "authorized_key"; }
    std::string probe(const facts&) const override {
        auto q = shell_quote(user);
        return fmt::format(
            "h=$(getent passwd {0} | cut -d: -f6); if [ -n \"$h\" ]; then echo \"ak.home $h\"; "
            "echo \"ak.ids $(id -un {0}) $(id -gn {0})\"\n{1}{2}fi\n",
            q, probe_path("ak.dir", "\"$h/.ssh\"", false, true),
            probe_path("ak", "\"$h/.ssh/authorized_keys\"", true, true));
    }
    core::result<check_result> check(const facts&, const probe_data& p) const override {
        check_result out;
        auto home = p.get("ak.home");
        if (!home || home->empty())
            return core::fail(
                core::errc::not_found,
                fmt::format("user {} does not exist on the host (create it with a user step first)",
                            user));
        auto ids = split_words(p.get("ak.ids").value_or(""));
        std::string group = ids.size() > 1 ? ids[1] : user;
        auto dir_path = *home + "/.ssh";
        auto path = dir_path + "/authorized_keys";
        // Root writes here for the user: only into a real directory that is the user's,
        // never through a link (which could point at root's or another account's keys).
        auto dir = read_path(p, "ak.dir");
        if (dir.refused) return core::fail(core::errc::denied, *dir.refused);
        if (dir.exists && dir.type == "symbolic link")
            return core::fail(
                core::errc::denied,
                fmt::format("{} is a symbolic link: refusing to write {}'s keys through it (it "
                            "could point at another account's .ssh); replace it with a real "
                            "directory owned by {} (mode 700)",
                            dir_path, user, user));
        if (dir.exists && dir.type != "directory")
            return core::fail(core::errc::denied,
                              fmt::format("{} is a {}, not a directory: replace it with a "
                                          "directory owned by {} (mode 700)",
                                          dir_path, dir.type, user));
        if (dir.exists && dir.owner != user)
            return core::fail(
                core::errc::denied,
                fmt::format("{} is owned by {}, not {}: refusing to write {}'s keys there; fix "
                            "with chown {} {}",
                            dir_path, dir.owner, user, user, user, dir_path));
        auto have = read_path(p, "ak");
        if (have.refused) return core::fail(core::errc::denied, *have.refused);
        if (have.exists && have.type != "regular file" && have.type != "regular empty file")
            return core::fail(core::errc::denied,
                              fmt::format("{} is a {}, not a regular file: refusing to read or "
                                          "replace it; remove it and run again",
                                          path, have.type));
        std::string old = have.content.value_or("");
        std::vector<std::string> lines = split_on(old, '\n');
        if (!lines.empty() && lines.back().empty()) lines.pop_back();

        std::vector<std::string> result;
        std::set<std::string> placed;
        auto wanted = [&](const key_line& k) -> const key_line* {
            for (const auto& w : keys)
                if (w.id() == k.id()) return &w;
            return nullptr;
        };
        for (const auto& line : lines) {
            auto k = parse_key_line(line);
            if (!k) {
                result.push_back(line);  // comments, blank lines, unparsable lines stay
                continue;
            }
            const key_line* w = wanted(*k);
            if (state == "absent") {
                if (w) continue;
                result.push_back(line);
            } else if (w) {
                if (placed.count(k->id())) continue;  // duplicate line
                placed.insert(k->id());
                if (options && k->options != *options) {
                    key_line fixed = *k;
                    fixed.options = *options;
                    result.push_back(render_key(fixed));
                } else {
                    result.push_back(line);
                }
            } else if (!exclusive) {
                result.push_back(line);
            }
        }
        if (state == "present")
            for (const auto& w : keys)
                if (!placed.count(w.id())) {
                    key_line k = w;
                    if (options) k.options = *options;
                    result.push_back(render_key(k));
                }
        std::string content;
        for (const auto& l : result) content += l + "\n";
        if (content == old || (!have.exists && content.empty())) return out;
        if (!dir.exists) {
            out.changes.push_back(fmt::format("create {}", dir_path));
            // mkdir never follows a link; chown -h changes a link swapped in, not its target.
            out.actions.push_back(
                {"create .ssh",
                 fmt::format("set -e\ntw_enter {} || tw_die\nif [ ! -d .ssh ] || [ -L .ssh ]; "
                             "then (umask 077; mkdir -- ./.ssh); fi\nchown -h -- {} ./.ssh\n",
                             shell_quote(*home), shell_quote(user + ":" + group)),
                 "", false, ""});
        }
        file_write w{path, content, user, group, "0600", std::nullopt, false, false};
        if (auto c = check_file(w, have, out); !c) return tl::unexpected(c.error());
        return out;
    }
};

class sudoers_module final : public module {
  public:
    std::string name;
    std::vector<std::string> rules;
    std::string state = "present";
    [[nodiscard]] std::string path() const { return "/etc/sudoers.d/" + name; }
    [[nodiscard]] std::string content() const {
        std::string s = "# Managed by tunnel (sudoers step); local edits are overwritten.\n";
        for (const auto& r : rules) s += r + "\n";
        return s;
    }
    std::string_view kind() const override { return "sudoers"; }
    std::string probe(const facts&) const override {
        return probe_path("s", path(), state == "present");
    }
    core::result<check_result> check(const facts&, const probe_data& p) const override {
        check_result out;
        auto have = read_path(p, "s");
        if (state == "absent") {
            if (have.exists) {
                out.changes.push_back(fmt::format("remove {}", path()));
                out.actions.push_back({fmt::format("remove {}", path()),
                                       remove_script(path(), false, false), "", false, ""});
            }
            return out;
        }
        file_write w{path(), content(), "root", "root", "0440", "visudo -cf %s", false, false};
        if (auto c = check_file(w, have, out); !c) return tl::unexpected(c.error());
        return out;
    }
};

}  // namespace

std::unique_ptr<module> parse_user(core::yaml_reader& r, const YAML::Node& args,
                                   const std::string& path, const parse_context&) {
    if (!r.expect_map(args, path,
                      {"name", "state", "shell", "groups", "append", "home", "system", "remove"})) {
        if (!args || args.IsNull()) r.error(path, "needs at least name");
        return nullptr;
    }
    auto m = std::make_unique<user_module>();
    if (args["name"]) {
        if (auto v = read_name(r, args["name"], path + ".name")) m->name = *v;
    } else {
        r.error(path + ".name", "is required");
    }
    if (args["state"])
        if (auto v = read_choice(r, args["state"], path + ".state", {"present", "absent"}))
            m->state = *v;
    if (args["shell"]) m->shell = read_path(r, args["shell"], path + ".shell");
    if (args["home"]) m->home = read_path(r, args["home"], path + ".home");
    if (args["groups"]) {
        if (auto v = read_strings(r, args["groups"], path + ".groups")) {
            for (std::size_t i = 0; i < v->size(); ++i)
                if (!read_name(r, YAML::Node((*v)[i]), fmt::format("{}.groups[{}]", path, i)))
                    return nullptr;
            m->groups = *v;
        }
    }
    if (args["append"]) m->append = read_bool(r, args["append"], path + ".append").value_or(false);
    if (args["system"]) m->system = read_bool(r, args["system"], path + ".system").value_or(false);
    if (args["remove"]) m->remove = read_bool(r, args["remove"], path + ".remove").value_or(false);
    return m;
}

std::unique_ptr<module> parse_authorized_key(core::yaml_reader& r, const YAML::Node& args,
                                             const std::string& path, const parse_context&) {
    if (!r.expect_map(args, path, {"user", "key", "state", "exclusive", "options"})) {
        if (!args || args.IsNull()) r.error(path, "needs user and key");
        return nullptr;
    }
    auto m = std::make_unique<authorized_key_module>();
    if (args["user"]) {
        if (auto v = read_name(r, args["user"], path + ".user")) m->user = *v;
    } else {
        r.error(path + ".user", "is required");
    }
    if (args["key"]) {
        if (auto v = read_strings(r, args["key"], path + ".key")) {
            for (const auto& text : *v)
                for (const auto& line : split_on(text, '\n')) {
                    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
                    auto k = parse_key_line(line);
                    if (!k) {
                        r.error(
                            path + ".key",
                            fmt::format(
                                "'{}' is not a public key line (\"ssh-ed25519 AAAA... comment\")",
                                line.substr(0, 40)));
                        continue;
                    }
                    m->keys.push_back(*k);
                }
            if (m->keys.empty() && r.ok()) r.error(path + ".key", "has no key");
        }
    } else {
        r.error(path + ".key", "is required");
    }
    if (args["state"])
        if (auto v = read_choice(r, args["state"], path + ".state", {"present", "absent"}))
            m->state = *v;
    if (args["exclusive"])
        m->exclusive = read_bool(r, args["exclusive"], path + ".exclusive").value_or(false);
    if (args["options"]) {
        if (auto v = r.string(args["options"], path + ".options")) {
            if (v->find('\n') != std::string::npos) r.error(path + ".options", "must be one line");
            m->options = *v;
        }
    }
    return m;
}

std::unique_ptr<module> parse_sudoers(core::yaml_reader& r, const YAML::Node& args,
                                      const std::string& path, const parse_context&) {
    if (!r.expect_map(args, path, {"name", "rules", "state"})) {
        if (!args || args.IsNull()) r.error(path, "needs name and rules");
        return nullptr;
    }
    auto m = std::make_unique<sudoers_module>();
    if (args["name"]) {
        if (auto v = r.string(args["name"], path + ".name")) {
            // sudo skips files in sudoers.d whose names contain '.' or end in '~'.
            bool ok = !v->empty() && std::all_of(v->begin(), v->end(), [](char c) {
                return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
            });
            if (!ok)
                r.error(path + ".name", fmt::format("'{}': use letters, digits, _ and - only (sudo "
                                                    "ignores names with '.' or '~')",
                                                    *v));
            m->name = *v;
        }
    } else {
        r.error(path + ".name", "is required");
    }
    if (args["state"])
        if (auto v = read_choice(r, args["state"], path + ".state", {"present", "absent"}))
            m->state = *v;
    if (args["rules"]) {
        if (auto v = read_strings(r, args["rules"], path + ".rules")) m->rules = *v;
    } else if (m->state == "present") {
        r.error(path + ".rules", "is required");
    }
    return m;
}

}  // namespace tunnel::ops
