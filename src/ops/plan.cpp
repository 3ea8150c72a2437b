#include "ops/plan.hpp"

#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/yaml_config.hpp"

namespace tunnel::ops {

std::string step::label() const {
    return fmt::format("step {} ({})", index,
                       name.empty() ? std::string(mod ? mod->kind() : "?") : name);
}

core::result<plan> parse_plan(std::string_view text, const std::string& file,
                              const std::string& plan_dir) {
    core::yaml_reader r(file);
    auto root = r.parse(text);
    if (!r.ok()) return tl::unexpected(r.failure());
    if (!root || root.IsNull())
        return core::fail(core::errc::invalid_argument,
                          fmt::format("{}: the plan is empty (expected a list of steps)", file));
    if (!root.IsSequence())
        return core::fail(
            core::errc::invalid_argument,
            fmt::format("{}: a plan is a YAML list of steps (\"- name: ...\"), not a {}", file,
                        root.IsMap() ? "mapping" : "single value"));
    plan p;
    p.file = file;
    parse_context ctx{plan_dir};
    for (std::size_t i = 0; i < root.size(); ++i) {
        const auto& n = root[i];
        step s;
        s.index = i + 1;
        if (n.IsMap() && n["name"] && n["name"].IsScalar()) s.name = n["name"].as<std::string>();
        auto where = s.name.empty() ? fmt::format("step {}", s.index)
                                    : fmt::format("step {} ({})", s.index, s.name);
        if (!n.IsMap()) {
            r.error(where,
                    "must be a mapping with one module key, e.g. {name: ..., file: {path: ..., "
                    "content: ...}}");
            continue;
        }
        std::string module_key;
        for (const auto& kv : n) {
            auto key = kv.first.as<std::string>();
            auto kp = where + "." + key;
            if (key == "name") {
                if (!kv.second.IsScalar()) r.error(kp, "must be a string");
            } else if (key == "hosts") {
                if (auto v = r.string(kv.second, kp)) s.hosts = *v;
            } else if (key == "sudo") {
                s.sudo = read_bool(r, kv.second, kp).value_or(false);
            } else if (key == "when") {
                if (auto v = r.string(kv.second, kp)) {
                    auto c = condition::parse(*v);
                    if (!c)
                        r.error(kp, c.error().message);
                    else
                        s.when = std::move(*c);
                }
            } else if (auto parse = find_module(key)) {
                if (!module_key.empty()) {
                    r.error(kp, fmt::format("a step has exactly one module; this one also has '{}'",
                                            module_key));
                    continue;
                }
                module_key = key;
                auto m = parse(r, kv.second, kp, ctx);
                if (m) s.mod = std::shared_ptr<const module>(std::move(m));
            } else {
                r.error(kp,
                        fmt::format(
                            "unknown module or key (keys: name, hosts, sudo, when; modules: {})",
                            fmt::join(module_names(), ", ")));
            }
        }
        if (module_key.empty())
            r.error(where,
                    fmt::format("has no module (one of: {})", fmt::join(module_names(), ", ")));
        p.steps.push_back(std::move(s));
    }
    if (!r.ok()) return tl::unexpected(r.failure());
    return p;
}

core::result<plan> load_plan(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return core::fail(core::errc::not_found, fmt::format("cannot read plan {}", path));
    std::ostringstream ss;
    ss << in.rdbuf();
    auto slash = path.rfind('/');
    return parse_plan(ss.str(), path, slash == std::string::npos ? "." : path.substr(0, slash));
}

}  // namespace tunnel::ops
