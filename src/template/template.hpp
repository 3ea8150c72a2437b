// Mustache templates for config files (plans' `template` steps, deploy files'
// `templates:`), rendered with Debian's header-only kainjow mustache.
//
//   {{ name }}            a variable: a string or a number, inserted verbatim
//   {{ user.name }}       a path into a mapping
//   {{#items}}..{{/items}} a loop over a list ({{.}} is the item, or the item's
//                         keys by name); a section for a true value or a mapping
//   {{^items}}..{{/items}} rendered when the value is false, null or an empty list
//   {{! comment }}        nothing
//
// Strict, unlike stock mustache: a name that is defined nowhere is an error
// naming the template and the line (stock mustache renders it as ""), and so
// is a variable tag on a value that has no text (true/false, null, a list, a
// mapping). Nothing is HTML-escaped: these are config files, so `{{ x }}` and
// `{{{ x }}}` both insert the value exactly as it is. Partials ({{> x}}) and
// lambdas are not supported.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace tunnel::templating {

inline constexpr std::size_t max_template_bytes = 1u << 20;  // a template file
inline constexpr std::size_t max_output_bytes = 16u << 20;   // what one render may produce

// Reads a template file (at most max_template_bytes); the error names the path.
[[nodiscard]] core::result<std::string> load_template(const std::string& path);

// Syntax only (unclosed tags and sections, partials); `name` is used in
// messages ("nginx.conf.tmpl:12: ...").
[[nodiscard]] core::result<void> check_template(std::string_view text, const std::string& name);

// Renders `text` with `vars` (a JSON object). Fails with "NAME:LINE: ..." on a
// syntax error, an undefined name or a value with no text in a variable tag.
[[nodiscard]] core::result<std::string> render_template(std::string_view text,
                                                        const std::string& name,
                                                        const nlohmann::json& vars);

}  // namespace tunnel::templating
