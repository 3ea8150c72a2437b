// `template`: a local mustache template (src/template) rendered with each
// host's variables and installed like `file` (same change detection, diff,
// owner/group/mode, validate, backup and atomic write).
//   - template: {src: templates/app.conf.mustache, path: /etc/app.conf, mode: "0640"}
#include <fmt/format.h>

#include "ops/modules.hpp"
#include "template/template.hpp"

namespace tunnel::ops {

namespace {

// One host's rendering: a file with known content.
class rendered_template final : public module {
  public:
    explicit rendered_template(file_write w) : want_(std::move(w)) {}
    std::string_view kind() const override { return "template"; }
    std::string probe(const facts&) const override { return probe_path("f", want_.path, true); }
    core::result<check_result> check(const facts&, const probe_data& p) const override {
        check_result out;
        if (auto c = check_file(want_, read_path(p, "f"), out); !c)
            return tl::unexpected(c.error());
        return out;
    }

  private:
    file_write want_;
};

class template_module final : public module {
  public:
    std::string src;   // the local file, for messages
    std::string text;  // its content
    file_write want;   // content filled in per host
    std::string_view kind() const override { return "template"; }
    std::string probe(const facts&) const override { return probe_path("f", want.path, true); }
    core::result<check_result> check(const facts&, const probe_data&) const override {
        return core::fail(core::errc::invalid_argument,
                          fmt::format("template {} was not rendered for this host", src));
    }
    core::result<std::shared_ptr<const module>> bind(const nlohmann::json& vars) const override {
        auto content = templating::render_template(text, src, vars);
        if (!content) return tl::unexpected(content.error());
        auto w = want;
        w.content = std::move(*content);
        return std::make_shared<const rendered_template>(std::move(w));
    }
};

}  // namespace

std::unique_ptr<module> parse_template(core::yaml_reader& r, const YAML::Node& args,
                                       const std::string& path, const parse_context& ctx) {
    if (!r.expect_map(args, path,
                      {"src", "path", "owner", "group", "mode", "backup", "validate"})) {
        if (!args || args.IsNull()) r.error(path, "needs src (the template) and path");
        return nullptr;
    }
    auto m = std::make_unique<template_module>();
    if (args["path"]) {
        if (auto v = read_path(r, args["path"], path + ".path")) m->want.path = *v;
    } else {
        r.error(path + ".path", "is required (where the rendered file goes on the host)");
    }
    if (args["src"]) {
        if (auto v = r.string(args["src"], path + ".src")) {
            m->src = plan_relative(ctx, *v);
            auto text = templating::load_template(m->src);
            if (!text) {
                r.error(path + ".src", fmt::format("{} (paths are relative to the plan file)",
                                                   text.error().message));
            } else if (auto ok = templating::check_template(*text, m->src); !ok) {
                r.error(path + ".src", ok.error().message);
            } else {
                m->text = std::move(*text);
            }
        }
    } else {
        r.error(path + ".src", "is required (a local mustache template)");
    }
    read_file_attributes(r, args, path, m->want);
    return m;
}

}  // namespace tunnel::ops
