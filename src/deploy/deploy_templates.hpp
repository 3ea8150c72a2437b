// A deploy file's `templates:` (rendered into each release before the switch):
//   templates:
//     - {src: config/app.env.mustache, dest: config/app.env, mode: "0640"}
// Every host's files are rendered before any host is touched, so a missing
// variable stops the deploy with the template, the line and the host.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/yaml_config.hpp"
#include "deploy/deploy_config.hpp"

namespace tunnel::deploy {

// Each rendered file is written by one command line (base64 in the script).
inline constexpr std::size_t max_rendered_template_bytes = 64u * 1024;

// Reads `templates:` into c.templates (reads and syntax-checks each src);
// problems go to `r`. Call after `shared` is read (a dest may not be shared).
void read_templates(core::yaml_reader& r, const YAML::Node& n, const std::string& dir,
                    deploy_config& c);

struct rendered_file {
    std::string dest;  // relative to the release
    std::string mode;
    std::string content;
};

// One host's files; `vars` from templating::host_variables.
[[nodiscard]] core::result<std::vector<rendered_file>> render_templates(const deploy_config& c,
                                                                        const std::string& host,
                                                                        const nlohmann::json& vars);

// The sh script writing `f` into releases/<id>: refuses a symbolic link on the
// way (the artifact's or a shared path's), writes a temporary file beside the
// destination and renames it over; prints WRITTEN.
[[nodiscard]] std::string write_rendered_script(const deploy_config& c, std::string_view id,
                                                const rendered_file& f);

}  // namespace tunnel::deploy
