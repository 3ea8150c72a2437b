#include "deploy/deploy_templates.hpp"

#include <fmt/format.h>

#include "core/encoding.hpp"
#include "core/shell_quote.hpp"
#include "core/yaml_config.hpp"
#include "template/template.hpp"

namespace tunnel::deploy {

namespace {

using core::line_of;

// A path inside the release: relative, no empty, '.' or '..' component.
bool inside_release(std::string_view p) {
    if (p.empty() || p.size() > 1024 || p.front() == '/' || p.back() == '/' ||
        p.find('\0') != std::string_view::npos || p.find('\n') != std::string_view::npos)
        return false;
    std::size_t pos = 0;
    while (pos <= p.size()) {
        auto slash = p.find('/', pos);
        auto part = p.substr(pos, slash == std::string_view::npos ? p.size() - pos : slash - pos);
        if (part.empty() || part == "." || part == "..") return false;
        if (slash == std::string_view::npos) break;
        pos = slash + 1;
    }
    return true;
}

bool under(std::string_view path, std::string shared) {
    while (shared.size() > 1 && shared.back() == '/') shared.pop_back();
    return path == shared ||
           (path.size() > shared.size() && path.substr(0, shared.size()) == shared &&
            path[shared.size()] == '/');
}

}  // namespace

void read_templates(core::yaml_reader& r, const YAML::Node& n, const std::string& dir,
                    deploy_config& c) {
    if (!n.IsSequence()) {
        r.error("templates",
                "must be a list of {src: LOCAL_TEMPLATE, dest: PATH_IN_RELEASE}" + line_of(n));
        return;
    }
    for (std::size_t i = 0; i < n.size(); ++i) {
        const auto& e = n[i];
        auto path = fmt::format("templates[{}]", i);
        if (!r.expect_map(e, path, {"src", "dest", "mode"})) continue;
        template_file t;
        for (auto key : {"src", "dest"})
            if (!e[key]) r.error(path + "." + key, "is required" + line_of(e));
        if (e["src"]) {
            auto src = r.string(e["src"], path + ".src").value_or("");
            if (!src.empty()) {
                t.src = src.front() == '/' ? src : dir + "/" + src;
                auto text = templating::load_template(t.src);
                if (!text)
                    r.error(path + ".src", text.error().message + line_of(e["src"]));
                else if (auto ok = templating::check_template(*text, t.src); !ok)
                    r.error(path + ".src", ok.error().message);
                else
                    t.text = std::move(*text);
            }
        }
        if (e["dest"]) {
            t.dest = r.string(e["dest"], path + ".dest").value_or("");
            if (!inside_release(t.dest)) {
                r.error(path + ".dest",
                        fmt::format("\"{}\" must be a file path inside the release, without "
                                    "'..' (e.g. config/app.env){}",
                                    t.dest, line_of(e["dest"])));
                continue;
            }
            for (const auto& s : c.shared)
                if (under(t.dest, s))
                    r.error(path + ".dest",
                            fmt::format("\"{}\" is in the shared path {}: a release's template "
                                        "would overwrite what every release shares{}",
                                        t.dest, s, line_of(e["dest"])));
        }
        if (e["mode"]) {
            auto m = r.string(e["mode"], path + ".mode").value_or("");
            bool ok = m.size() >= 3 && m.size() <= 4 &&
                      m.find_first_not_of("01234567") == std::string::npos;
            if (!ok)
                r.error(path + ".mode",
                        fmt::format("'{}' is not an octal mode such as \"0640\" (quote it){}", m,
                                    line_of(e["mode"])));
            else
                t.mode = m;
        }
        c.templates.push_back(std::move(t));
    }
}

core::result<std::vector<rendered_file>> render_templates(const deploy_config& c,
                                                          const std::string& host,
                                                          const nlohmann::json& vars) {
    std::vector<rendered_file> out;
    for (const auto& t : c.templates) {
        auto text = templating::render_template(t.text, t.src, vars);
        if (!text)
            return core::fail(text.error().code,
                              fmt::format("host {}: {}", host, text.error().message));
        if (text->size() > max_rendered_template_bytes)
            return core::fail(core::errc::invalid_argument,
                              fmt::format("host {}: {} renders to {} bytes; a deploy template may "
                                          "produce at most {} (ship bigger files in the artifact)",
                                          host, t.src, text->size(), max_rendered_template_bytes));
        out.push_back({t.dest, t.mode, std::move(*text)});
    }
    return out;
}

std::string write_rendered_script(const deploy_config& c, std::string_view id,
                                  const rendered_file& f) {
    using core::shell_quote;
    const auto slash = f.dest.rfind('/');
    const std::string parent = slash == std::string::npos ? std::string() : f.dest.substr(0, slash);
    const std::string name = slash == std::string::npos ? f.dest : f.dest.substr(slash + 1);
    // Walk the parent components from the release: none may be a symbolic link
    // (the artifact's or a shared one), so the file stays inside this release.
    std::string s = fmt::format(
        "set -e\ncd {} || exit 1\nparent={}\nif [ -n \"$parent\" ]; then\n"
        "  old_ifs=$IFS; IFS=/; set -f; set -- $parent; IFS=$old_ifs; set +f\n"
        "  for part in \"$@\"; do\n"
        "    if [ -L \"$part\" ]; then echo \"$part is a symbolic link; a template is not "
        "written through one\" >&2; exit 3; fi\n"
        "    [ -d \"$part\" ] || mkdir -- \"$part\"\n    cd -- \"$part\"\n  done\nfi\n"
        "n={}\nif [ -L \"$n\" ] || [ -d \"$n\" ]; then echo \"$n is a symbolic link or a "
        "directory\" >&2; exit 3; fi\n"
        "t=\".$n.tunnel-template.$$\"\ntrap 'rm -f -- \"$t\"' EXIT\n(umask 077; printf '%s' {} | "
        "base64 -d > \"$t\")\nchmod {} \"$t\"\nmv -f -- \"$t\" \"$n\"\ntrap - EXIT\necho WRITTEN\n",
        shell_quote(c.root + "/releases/" + std::string(id)), shell_quote(parent),
        shell_quote(name), shell_quote(core::base64_encode(f.content)), shell_quote(f.mode));
    return s;
}

}  // namespace tunnel::deploy
