// `file`, `directory` and `command`.
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/shell_quote.hpp"
#include "ops/diff.hpp"
#include "ops/modules.hpp"

namespace tunnel::ops {

using core::shell_quote;

namespace {

class file_module final : public module {
  public:
    file_write want;
    std::string state = "present";
    std::string_view kind() const override { return "file"; }
    std::string probe(const facts&) const override {
        return probe_path("f", want.path, state == "present");
    }
    core::result<check_result> check(const facts&, const probe_data& p) const override {
        check_result out;
        auto have = read_path(p, "f");
        if (state == "absent" && have.refused)
            return core::fail(core::errc::denied, fmt::format("{}: {}", want.path, *have.refused));
        if (state == "absent") {
            if (have.exists) {
                out.changes.push_back(fmt::format("remove {}", want.path));
                if (have.content) out.diff = unified_diff_for_removal(*have.content);
                out.actions.push_back({fmt::format("remove {}", want.path),
                                       remove_script(want.path, false, want.backup), "", false,
                                       ""});
            }
            return out;
        }
        if (auto c = check_file(want, have, out); !c) return tl::unexpected(c.error());
        return out;
    }

  private:
    std::string unified_diff_for_removal(const std::string& old) const {
        return unified_diff(old, "", want.path, "/dev/null");
    }
};

class directory_module final : public module {
  public:
    std::string path;
    std::optional<std::string> owner, group, mode;
    std::string state = "present";
    std::string_view kind() const override { return "directory"; }
    std::string probe(const facts&) const override { return probe_path("d", path, false); }
    core::result<check_result> check(const facts&, const probe_data& p) const override {
        check_result out;
        auto have = read_path(p, "d");
        if (have.refused)
            return core::fail(core::errc::denied, fmt::format("{}: {}", path, *have.refused));
        if (state == "absent") {
            if (have.exists) {
                out.changes.push_back(fmt::format("remove {} ({})", path, have.type));
                out.actions.push_back({fmt::format("remove {}", path),
                                       remove_script(path, true, false), "", false, ""});
            }
            return out;
        }
        if (have.exists && have.type != "directory")
            return core::fail(core::errc::invalid_argument,
                              fmt::format("{} exists and is a {}, not a directory; remove it first",
                                          path, have.type));
        if (!have.exists) out.changes.push_back(fmt::format("create directory {}", path));
        auto norm = [](std::string m) {
            while (m.size() > 1 && m.front() == '0') m.erase(0, 1);
            return m;
        };
        std::optional<std::string> set_mode, set_owner, set_group;
        if (mode && (!have.exists || norm(*mode) != have.mode)) {
            if (have.exists)
                out.changes.push_back(
                    fmt::format("mode of {}: {} -> {}", path, have.mode, norm(*mode)));
            set_mode = mode;
        }
        if (owner && (!have.exists || *owner != have.owner)) {
            if (have.exists)
                out.changes.push_back(
                    fmt::format("owner of {}: {} -> {}", path, have.owner, *owner));
            set_owner = owner;
        }
        if (group && (!have.exists || *group != have.group)) {
            if (have.exists)
                out.changes.push_back(
                    fmt::format("group of {}: {} -> {}", path, have.group, *group));
            set_group = group;
        }
        if (out.changed())
            out.actions.push_back({fmt::format("directory {}", path),
                                   directory_script(path, set_owner, set_group, set_mode), "",
                                   false, ""});
        return out;
    }
};

// Runs a command unless `creates` exists or `unless` succeeds (always
// reports changed otherwise, like Ansible's command module).
class command_module final : public module {
  public:
    std::string run;
    std::optional<std::string> creates, unless;
    std::string_view kind() const override { return "command"; }
    std::string probe(const facts&) const override {
        std::string s;
        if (creates) s += fmt::format("[ -e {} ] && echo cmd.skip\n", shell_quote(*creates));
        if (unless)
            s += fmt::format("( {} ) >/dev/null 2>&1 </dev/null && echo cmd.skip\n", *unless);
        return s;
    }
    core::result<check_result> check(const facts&, const probe_data& p) const override {
        check_result out;
        if (p.has("cmd.skip")) return out;
        out.changes.push_back(fmt::format("run: {}", run));
        out.actions.push_back({fmt::format("run {}", run), run + "\n", "", false, ""});
        return out;
    }
};

std::optional<std::string> read_local_file(core::yaml_reader& r, const std::string& file,
                                           const std::string& path) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        r.error(path, fmt::format("cannot read {} (paths are relative to the plan file)", file));
        return std::nullopt;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace

std::unique_ptr<module> parse_file(core::yaml_reader& r, const YAML::Node& args,
                                   const std::string& path, const parse_context& ctx) {
    if (!r.expect_map(
            args, path,
            {"path", "content", "src", "owner", "group", "mode", "backup", "state", "validate"})) {
        if (!args || args.IsNull()) r.error(path, "needs at least path and content or src");
        return nullptr;
    }
    auto m = std::make_unique<file_module>();
    if (args["path"]) {
        if (auto v = read_path(r, args["path"], path + ".path")) m->want.path = *v;
    } else {
        r.error(path + ".path", "is required");
    }
    if (args["state"])
        if (auto v = read_choice(r, args["state"], path + ".state", {"present", "absent"}))
            m->state = *v;
    if (args["content"] && args["src"]) r.error(path, "give either content or src, not both");
    if (args["content"]) {
        if (auto v = r.string(args["content"], path + ".content")) m->want.content = *v;
    } else if (args["src"]) {
        if (auto v = r.string(args["src"], path + ".src")) {
            auto file = plan_relative(ctx, *v);
            if (auto c = read_local_file(r, file, path + ".src")) m->want.content = *c;
        }
    } else if (m->state == "present") {
        r.error(path, "needs content or src");
    }
    read_file_attributes(r, args, path, m->want);
    return m;
}

std::unique_ptr<module> parse_directory(core::yaml_reader& r, const YAML::Node& args,
                                        const std::string& path, const parse_context&) {
    if (!r.expect_map(args, path, {"path", "owner", "group", "mode", "state"})) {
        if (!args || args.IsNull()) r.error(path, "needs at least path");
        return nullptr;
    }
    auto m = std::make_unique<directory_module>();
    if (args["path"]) {
        if (auto v = read_path(r, args["path"], path + ".path")) m->path = *v;
    } else {
        r.error(path + ".path", "is required");
    }
    if (args["owner"]) m->owner = read_name(r, args["owner"], path + ".owner");
    if (args["group"]) m->group = read_name(r, args["group"], path + ".group");
    if (args["mode"]) m->mode = read_mode(r, args["mode"], path + ".mode");
    if (args["state"])
        if (auto v = read_choice(r, args["state"], path + ".state", {"present", "absent"}))
            m->state = *v;
    return m;
}

std::unique_ptr<module> parse_command(core::yaml_reader& r, const YAML::Node& args,
                                      const std::string& path, const parse_context&) {
    auto m = std::make_unique<command_module>();
    if (args && args.IsScalar()) {
        m->run = args.as<std::string>();
        return m;
    }
    if (!r.expect_map(args, path, {"run", "creates", "unless"})) {
        r.error(path, "needs a command (a string, or run: with creates:/unless:)");
        return nullptr;
    }
    if (args["run"]) {
        if (auto v = r.string(args["run"], path + ".run")) m->run = *v;
    } else {
        r.error(path + ".run", "is required");
    }
    if (args["creates"]) m->creates = read_path(r, args["creates"], path + ".creates");
    if (args["unless"]) m->unless = r.string(args["unless"], path + ".unless");
    return m;
}

}  // namespace tunnel::ops
