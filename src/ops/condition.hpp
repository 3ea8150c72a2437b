// `when:` conditions over facts. The whole language:
//   expr    := or
//   or      := and ('or' and)*
//   and     := not ('and' not)*
//   not     := 'not' not | primary
//   primary := '(' expr ')' | value ('==' | '!=') value | value ['not'] 'in' list | 'true' |
//   'false' value   := facts.NAME | 'string' | "string" | number list    := '[' [value (','
//   value)*] ']'
// e.g. `facts.distro == 'debian' and facts.pkg_manager in ['apt', 'dnf']`.
// Comparisons are on strings; unknown fact names are errors at parse time.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "ops/facts.hpp"

namespace tunnel::ops {

class condition {
  public:
    struct node;
    [[nodiscard]] static core::result<condition> parse(std::string_view text);
    [[nodiscard]] bool evaluate(const facts& f) const;
    [[nodiscard]] const std::string& text() const noexcept { return text_; }

  private:
    condition(std::string text, std::shared_ptr<const node> root)
        : text_(std::move(text)), root_(std::move(root)) {}
    std::string text_;
    std::shared_ptr<const node> root_;
};

}  // namespace tunnel::ops
