#include "exec/exec_config.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/yaml_config.hpp"

namespace tunnel::exec {

core::result<exec_config> parse_exec_config(std::string_view yaml_text, const std::string& source) {
    core::yaml_reader r(source);
    exec_config cfg;
    auto doc = r.parse(yaml_text);
    if (r.expect_map(doc, "", {"exec", "pool", "forward", "transfer", "relay"})) {
        auto exec = doc["exec"];
        if (r.expect_map(exec, "exec", {"rules", "retries", "timeout"})) {
            if (exec["rules"]) {
                if (auto list = r.string_list(exec["rules"], "exec.rules")) {
                    for (std::size_t i = 0; i < list->size(); ++i) {
                        auto rule = parse_rule((*list)[i]);
                        if (!rule)
                            r.error(fmt::format("exec.rules[{}]", i), rule.error().message);
                        else
                            cfg.rules.add(*rule);
                    }
                }
            }
            if (exec["retries"])
                if (auto v = r.integer(exec["retries"], "exec.retries", 0, 100))
                    cfg.retries = static_cast<unsigned>(*v);
            if (exec["timeout"]) cfg.timeout = r.duration(exec["timeout"], "exec.timeout");
        }
    }
    if (!r.ok()) return tl::unexpected(r.failure());
    return cfg;
}

core::result<exec_config> load_exec_config(const std::string& home) {
    std::string path;
    bool required = false;
    if (const char* env = std::getenv("TUNNEL_CONFIG"); env && *env) {
        path = env;
        required = true;
    } else {
        path = home + "/.config/tunnel/config.yaml";
    }
    std::ifstream in(path);
    if (!in) {
        if (!required) return exec_config{};
        return core::fail(
            core::errc::not_found,
            fmt::format("TUNNEL_CONFIG={}: cannot read the file: {}", path, std::strerror(errno)));
    }
    std::stringstream text;
    text << in.rdbuf();
    return parse_exec_config(text.str(), path);
}

}  // namespace tunnel::exec
