// A plan module: reads the host's current state with a probe (a POSIX sh
// snippet, batched with the other steps' probes into one round trip per
// host), compares it with the desired state (`check`: the list of changes,
// a unified diff for files, and the actions that make them), and the runner
// executes those actions unless in check mode.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/yaml_config.hpp"
#include "ops/facts.hpp"

namespace tunnel::ops {

// The lines a step's probe printed, as `KEY VALUE...` (KEY has no spaces).
class probe_data {
  public:
    probe_data() = default;
    explicit probe_data(std::string_view text);
    [[nodiscard]] bool has(std::string_view key) const {
        return values_.count(std::string(key)) > 0;
    }
    // The first value of `key`, or nullopt.
    [[nodiscard]] std::optional<std::string> get(std::string_view key) const;
    // Every value of `key`, in order.
    [[nodiscard]] std::vector<std::string> all(std::string_view key) const;
    // The base64 value of `key`, decoded ("" when absent).
    [[nodiscard]] std::string decoded(std::string_view key) const;

  private:
    std::multimap<std::string, std::string, std::less<>> values_;
};

// State of one path as probe_path printed it (the entry itself: a symbolic
// link is reported as one, never followed).
struct path_state {
    bool exists = false;
    std::string type;  // "regular file", "directory", "symbolic link", ...
    std::string mode;  // octal, as stat %a prints it ("644")
    std::string owner, group;
    std::uint64_t size = 0;
    std::optional<std::string> content;  // regular files up to probe_content_limit
    std::optional<std::string> sha256;   // larger regular files
    // Who besides root (and the script's user) can change the directory it is
    // in ("deploy", "every user"); nullopt when nobody.
    std::optional<std::string> others_can_change;
    // Why the probe would not read it (a symbolic link on the way in a
    // directory others can change, a hard-linked file there); see safe_path.hpp.
    std::optional<std::string> refused;
};
inline constexpr std::uint64_t probe_content_limit = 1u << 20;

// A sh snippet printing `TAG.stat ...` / `TAG.b64 ...` / `TAG.absent` /
// `TAG.refused ...` for PATH, reached race-free (tw_probe in safe_path.cpp).
// It leaves the shell in PATH's directory: what follows must use absolute paths.
// PATH may be a sh expression such as "$h/.ssh/authorized_keys" when `raw_path`.
[[nodiscard]] std::string probe_path(std::string_view tag, std::string_view path, bool with_content,
                                     bool raw_path = false);
[[nodiscard]] path_state read_path(const probe_data& p, std::string_view tag);

// What a step does on the host. Every action is one sh script run in one
// round trip (as root when the step has `sudo: true`).
struct action {
    std::string description;
    std::string script;
    std::string input;  // the script's stdin (file contents)
    // sshd: after the script, a brand-new SSH connection must log in; if it
    // cannot, `rollback` runs on the existing session and the step fails.
    bool verify_fresh_login = false;
    std::string rollback;
};

struct check_result {
    std::vector<std::string> changes;  // human-readable, empty = ok
    std::string diff;                  // unified diff(s) of files
    std::vector<action> actions;
    [[nodiscard]] bool changed() const noexcept { return !changes.empty(); }
};

// How a managed file is put in place: its directory is entered race-free
// (tw_enter), the content written to a file in a fresh 0700 staging directory
// beside it, validated (`validate` with %s for that file's path), given
// owner/group/mode, the old version copied to PATH.YYYYmmddTHHMMSS~ when
// `backup`, then renamed over PATH (atomic: readers see the old or the new
// file; a symbolic link at PATH is replaced, never followed).
struct file_write {
    std::string path;
    std::string content;
    std::optional<std::string> owner, group, mode;
    std::optional<std::string> validate;
    bool backup = false;
    bool make_parent = false;  // mkdir -p the parent first
};
[[nodiscard]] action write_file_action(const file_write& w);

// Compares a desired file with its probed state: adds the changes, the diff
// and the write action to `out` when it differs. Fails when the probe refused
// the path (the message says which component and what to fix).
[[nodiscard]] core::result<void> check_file(const file_write& want, const path_state& have,
                                            check_result& out);

// The sh commands that bring a directory to its state: entered race-free
// (created with its parents when missing), then chmod/chown/chgrp on `.`.
[[nodiscard]] std::string directory_script(const std::string& path,
                                           const std::optional<std::string>& owner,
                                           const std::optional<std::string>& group,
                                           const std::optional<std::string>& mode);
// Removes PATH (a file, or a directory tree with `recursive`), reached
// race-free; keeps a PATH.YYYYmmddTHHMMSS~ copy of a regular file when `backup`.
[[nodiscard]] std::string remove_script(const std::string& path, bool recursive, bool backup);

struct host_context {
    const facts& host_facts;
};

class module {
  public:
    virtual ~module() = default;
    [[nodiscard]] virtual std::string_view kind() const = 0;
    // A sh snippet printing the state `check` needs. Output lines are KEY VALUE.
    [[nodiscard]] virtual std::string probe(const facts& f) const = 0;
    // Desired vs current. An error fails the step (e.g. a refused firewall step).
    [[nodiscard]] virtual core::result<check_result> check(const facts& f,
                                                           const probe_data& p) const = 0;
    // For a module whose desired state depends on the host's variables (a
    // template): the module for one host, rendered with `vars` (inventory
    // vars, --extra-vars, `facts`). The runner binds every host's steps before
    // it changes anything on any host. nullptr: this module serves every host.
    [[nodiscard]] virtual core::result<std::shared_ptr<const module>> bind(
        const nlohmann::json& /*vars*/) const {
        return std::shared_ptr<const module>();
    }
};

// What a module's parser may need besides its arguments.
struct parse_context {
    std::string plan_dir;  // `src:` paths are relative to the plan file
};

// Reads a module's arguments (a mapping). Problems are recorded in `r` with
// `path` (e.g. "step 3 (deploy user).user.shell"); nullptr when any.
using module_parser = std::unique_ptr<module> (*)(core::yaml_reader& r, const YAML::Node& args,
                                                  const std::string& path,
                                                  const parse_context& ctx);
// The parser for a module name, or nullptr when unknown.
[[nodiscard]] module_parser find_module(std::string_view name);
[[nodiscard]] std::vector<std::string_view> module_names();

// Small shared helpers for module parsers.
[[nodiscard]] std::optional<bool> read_bool(core::yaml_reader& r, const YAML::Node& node,
                                            const std::string& path);
// One of `allowed`; records an error naming them otherwise.
[[nodiscard]] std::optional<std::string> read_choice(
    core::yaml_reader& r, const YAML::Node& node, const std::string& path,
    std::initializer_list<std::string_view> allowed);
// A string or a list of strings.
[[nodiscard]] std::optional<std::vector<std::string>> read_strings(core::yaml_reader& r,
                                                                   const YAML::Node& node,
                                                                   const std::string& path);
// "0640" / "640" / 0640 (YAML reads a bare 0640 as octal text): normalised to "640".
[[nodiscard]] std::optional<std::string> read_mode(core::yaml_reader& r, const YAML::Node& node,
                                                   const std::string& path);
// A user/group/unit/package-style name: no spaces, quotes, slashes or leading '-'.
[[nodiscard]] std::optional<std::string> read_name(core::yaml_reader& r, const YAML::Node& node,
                                                   const std::string& path);
// An absolute path without NUL or newline.
[[nodiscard]] std::optional<std::string> read_path(core::yaml_reader& r, const YAML::Node& node,
                                                   const std::string& path);

// A `src:` path as written in a plan: absolute, or relative to the plan file.
[[nodiscard]] std::string plan_relative(const parse_context& ctx, const std::string& src);
// The attributes a written file may have (file and template modules):
// owner, group, mode, backup and validate (which must contain %s).
void read_file_attributes(core::yaml_reader& r, const YAML::Node& args, const std::string& path,
                          file_write& want);

[[nodiscard]] std::string base64_decode(std::string_view in);

}  // namespace tunnel::ops
