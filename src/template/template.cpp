#include "template/template.hpp"

#include <fstream>
#include <optional>
#include <sstream>

#include <fmt/format.h>
#include <kainjow/mustache.hpp>

namespace tunnel::templating {

namespace mst = kainjow::mustache;

namespace {

using component = mst::component<std::string>;
using walk = component::walk_control;

constexpr std::size_t max_render_steps = 10'000'000;

std::size_t line_at(std::string_view text, std::size_t position) {
    if (position == std::string::npos || position > text.size()) return 1;
    std::size_t line = 1;
    for (std::size_t i = 0; i < position; ++i)
        if (text[i] == '\n') ++line;
    return line;
}

// The library reports "Unclosed tag at 123" (a byte offset): say the line instead.
core::error syntax_error(std::string_view text, const std::string& name,
                         const std::string& message) {
    std::size_t line = 0;
    std::string what = message;
    if (auto at = message.rfind(" at "); at != std::string::npos) {
        auto digits = message.substr(at + 4);
        if (!digits.empty() && digits.find_first_not_of("0123456789") == std::string::npos &&
            digits.size() < 12) {
            line = line_at(text, std::stoull(digits));
            what = message.substr(0, at);
        }
    }
    auto where = line ? fmt::format("{}:{}", name, line) : name;
    return core::error{core::errc::invalid_argument,
                       fmt::format("{}: template syntax: {}", where, what)};
}

// JSON as mustache data: strings and numbers are text, true/false are
// booleans, null is false, arrays are lists and objects mappings.
mst::data to_data(const nlohmann::json& j) {
    switch (j.type()) {
        case nlohmann::json::value_t::object: {
            mst::data d{mst::data::type::object};
            for (const auto& [k, v] : j.items()) d.set(k, to_data(v));
            return d;
        }
        case nlohmann::json::value_t::array: {
            mst::data d{mst::data::type::list};
            for (const auto& v : j) d.push_back(to_data(v));
            return d;
        }
        case nlohmann::json::value_t::string:
            return mst::data{j.get<std::string>()};
        case nlohmann::json::value_t::boolean:
            return mst::data{j.get<bool>()};
        case nlohmann::json::value_t::null:
        case nlohmann::json::value_t::discarded:
            return mst::data{false};
        default:  // numbers: 8080, 1.5
            return mst::data{j.dump()};
    }
}

std::string_view describe(const mst::data& d) {
    if (d.is_true()) return "true";
    if (d.is_false()) return "false or null";
    if (d.is_list()) return "a list";
    if (d.is_object()) return "a mapping";
    return "not text";
}

std::string tag_text(const component& c) {
    switch (c.tag.type) {
        case mst::tag_type::section_begin:
            return fmt::format("{{{{#{}}}}}", c.tag.name);
        case mst::tag_type::section_begin_inverted:
            return fmt::format("{{{{^{}}}}}", c.tag.name);
        case mst::tag_type::partial:
            return fmt::format("{{{{>{}}}}}", c.tag.name);
        default:
            return fmt::format("{{{{ {} }}}}", c.tag.name);
    }
}

// Walks the parsed template the way the library renders it (same lookups,
// same sections and loops), failing on the first name defined nowhere.
class strict_check {
  public:
    strict_check(std::string_view text, const std::string& name) : text_(text), name_(name) {}

    core::result<void> run(component& root, const mst::data& data) {
        mst::context<std::string> ctx(&data);
        visit(root, ctx);
        if (failure_) return tl::unexpected(*failure_);
        return {};
    }

  private:
    void fail(const component& c, const std::string& what) {
        failure_ = core::error{
            core::errc::invalid_argument,
            fmt::format("{}:{}: {} {}", name_, line_at(text_, c.position), tag_text(c), what)};
    }

    // Loops multiply: the walk stops once the output or the work would be too large.
    bool over_budget(const component& c) {
        if (produced_ > max_output_bytes || steps_ > max_render_steps) {
            failure_ = core::error{
                core::errc::invalid_argument,
                fmt::format("{}:{}: the rendered file would be larger than {} bytes (or take more "
                            "than {} steps): check the loops",
                            name_, line_at(text_, c.position), max_output_bytes, max_render_steps)};
            return true;
        }
        return false;
    }

    void visit(component& parent, mst::context<std::string>& ctx) {
        parent.walk_children([&](component& c) {
            if (failure_) return walk::stop;
            ++steps_;
            if (c.is_text()) produced_ += c.text.size();
            if (over_budget(c)) return walk::stop;
            switch (c.tag.type) {
                case mst::tag_type::variable:
                case mst::tag_type::unescaped_variable: {
                    const auto* v = ctx.get(c.tag.name);
                    if (!v) {
                        fail(c, "is not defined");
                    } else if (v->is_string()) {
                        produced_ += v->string_value().size();
                    } else {
                        fail(c, fmt::format("is {}, which has no text: use a section "
                                            "({{{{#{}}}}}...{{{{/{}}}}}), or quote the value in "
                                            "YAML for the word",
                                            describe(*v), c.tag.name, c.tag.name));
                    }
                    return walk::walk;
                }
                case mst::tag_type::section_begin:
                case mst::tag_type::section_begin_inverted: {
                    const auto* v = ctx.get(c.tag.name);
                    if (!v) {
                        fail(c,
                             "is not defined (for an optional block, define it as false, "
                             "null or [])");
                        return walk::stop;
                    }
                    const bool falsy = v->is_false() || v->is_empty_list();
                    const bool inverted = c.tag.type == mst::tag_type::section_begin_inverted;
                    if (inverted != falsy) return walk::skip;  // not rendered
                    if (!inverted && v->is_non_empty_list()) {
                        for (const auto& item : v->list_value()) {
                            ++steps_;
                            if (over_budget(c)) return walk::stop;
                            ctx.push(&item);
                            visit(c, ctx);
                            ctx.pop();
                            if (failure_) return walk::stop;
                        }
                    } else {
                        ctx.push(v);
                        visit(c, ctx);
                        ctx.pop();
                    }
                    return failure_ ? walk::stop : walk::skip;
                }
                case mst::tag_type::partial:
                    fail(c, "is a partial; templates cannot include other files");
                    return walk::stop;
                default:
                    return walk::walk;
            }
        });
    }

    std::string_view text_;
    const std::string& name_;
    std::optional<core::error> failure_;
    std::size_t produced_ = 0;  // bytes the render will produce, at least
    std::size_t steps_ = 0;     // tags, texts and loop items visited
};

core::result<void> parse(std::string_view text, const std::string& name, component& root) {
    if (text.size() > max_template_bytes)
        return core::fail(core::errc::invalid_argument,
                          fmt::format("{}: the template is {} bytes; at most {} are allowed", name,
                                      text.size(), max_template_bytes));
    mst::context<std::string> ctx;
    mst::context_internal<std::string> internal{ctx};
    std::string error;
    mst::parser<std::string> parser{std::string(text), internal, root, error};
    if (!error.empty()) return tl::unexpected(syntax_error(text, name, error));
    // Partials anywhere, even in sections that will not render, are refused up front.
    std::optional<core::error> partial;
    root.walk_children([&](component& c) {
        if (c.tag.type != mst::tag_type::partial) return walk::walk;
        partial = core::error{core::errc::invalid_argument,
                              fmt::format("{}:{}: {} is a partial; templates cannot include "
                                          "other files",
                                          name, line_at(text, c.position), tag_text(c))};
        return walk::stop;
    });
    if (partial) return tl::unexpected(*partial);
    return {};
}

}  // namespace

core::result<std::string> load_template(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return core::fail(core::errc::not_found, fmt::format("cannot read template {}", path));
    std::string text;
    char buf[65536];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
        text.append(buf, static_cast<std::size_t>(in.gcount()));
        if (text.size() > max_template_bytes)
            return core::fail(
                core::errc::invalid_argument,
                fmt::format("template {} is larger than {} bytes", path, max_template_bytes));
    }
    return text;
}

core::result<void> check_template(std::string_view text, const std::string& name) {
    component root;
    return parse(text, name, root);
}

core::result<std::string> render_template(std::string_view text, const std::string& name,
                                          const nlohmann::json& vars) {
    component root;
    if (auto p = parse(text, name, root); !p) return tl::unexpected(p.error());
    if (!vars.is_object())
        return core::fail(core::errc::invalid_argument,
                          fmt::format("{}: the variables are not a mapping", name));
    const auto data = to_data(vars);
    if (auto c = strict_check(text, name).run(root, data); !c) return tl::unexpected(c.error());

    mst::mustache tmpl{std::string(text)};
    tmpl.set_custom_escape([](const std::string& s) { return s; });  // config files, not HTML
    std::string out;
    bool too_large = false;
    tmpl.render(data, [&](const std::string& piece) {
        if (too_large || out.size() + piece.size() > max_output_bytes) {
            too_large = true;
            return;
        }
        out += piece;
    });
    if (!tmpl.is_valid()) return tl::unexpected(syntax_error(text, name, tmpl.error_message()));
    if (too_large)
        return core::fail(core::errc::invalid_argument,
                          fmt::format("{}: the rendered file would be larger than {} bytes", name,
                                      max_output_bytes));
    return out;
}

}  // namespace tunnel::templating
