#include "ops/condition.hpp"

#include <algorithm>
#include <cctype>
#include <variant>
#include <vector>

#include <fmt/format.h>

namespace tunnel::ops {

// A value is a literal or a fact reference.
struct operand {
    bool is_fact = false;
    std::string text;  // literal value or fact name
    [[nodiscard]] std::string value(const facts& f) const {
        return is_fact ? f.get(text).value_or("") : text;
    }
};

struct condition::node {
    enum class kind {
        constant,
        equal,
        not_equal,
        in,
        not_in,
        negate,
        both,
        either
    } k = kind::constant;
    bool constant = false;
    operand left;
    std::vector<operand> right;  // one for == / !=, the list for in
    std::shared_ptr<const node> a, b;
};

namespace {

using node = condition::node;
using node_ptr = std::shared_ptr<const node>;

struct token {
    enum class kind { word, string, op, end } k = kind::end;
    std::string text;
    std::size_t at = 0;
};

core::result<std::vector<token>> tokenize(std::string_view s) {
    std::vector<token> out;
    std::size_t i = 0;
    while (i < s.size()) {
        char c = s[i];
        if (std::isspace(static_cast<unsigned char>(c))) {
            ++i;
            continue;
        }
        if (c == '\'' || c == '"') {
            auto end = s.find(c, i + 1);
            if (end == std::string_view::npos)
                return core::fail(core::errc::invalid_argument,
                                  fmt::format("unterminated string at column {}", i + 1));
            out.push_back({token::kind::string, std::string(s.substr(i + 1, end - i - 1)), i});
            i = end + 1;
            continue;
        }
        if ((c == '=' || c == '!') && i + 1 < s.size() && s[i + 1] == '=') {
            out.push_back({token::kind::op, std::string(s.substr(i, 2)), i});
            i += 2;
            continue;
        }
        if (c == '(' || c == ')' || c == '[' || c == ']' || c == ',') {
            out.push_back({token::kind::op, std::string(1, c), i});
            ++i;
            continue;
        }
        if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-') {
            auto start = i;
            while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_' ||
                                    s[i] == '.' || s[i] == '-'))
                ++i;
            out.push_back({token::kind::word, std::string(s.substr(start, i - start)), start});
            continue;
        }
        return core::fail(core::errc::invalid_argument,
                          fmt::format("unexpected '{}' at column {}", c, i + 1));
    }
    out.push_back({token::kind::end, "", s.size()});
    return out;
}

class parser {
  public:
    explicit parser(std::vector<token> t) : t_(std::move(t)) {}

    core::result<node_ptr> parse_all() {
        auto n = parse_or();
        if (!n) return n;
        if (peek().k != token::kind::end) return error("expected end of condition");
        return n;
    }

  private:
    const token& peek() const { return t_[pos_]; }
    bool is_word(std::string_view w) const {
        return peek().k == token::kind::word && peek().text == w;
    }
    bool is_op(std::string_view o) const { return peek().k == token::kind::op && peek().text == o; }
    tl::unexpected<core::error> error(std::string_view what) const {
        auto shown = peek().k == token::kind::end ? std::string("end") : "'" + peek().text + "'";
        return core::fail(core::errc::invalid_argument,
                          fmt::format("{} at column {} (found {})", what, peek().at + 1, shown));
    }

    core::result<node_ptr> parse_or() {
        auto left = parse_and();
        if (!left) return left;
        while (is_word("or")) {
            ++pos_;
            auto right = parse_and();
            if (!right) return right;
            auto n = std::make_shared<node>();
            n->k = node::kind::either;
            n->a = *left;
            n->b = *right;
            left = node_ptr(n);
        }
        return left;
    }
    core::result<node_ptr> parse_and() {
        auto left = parse_not();
        if (!left) return left;
        while (is_word("and")) {
            ++pos_;
            auto right = parse_not();
            if (!right) return right;
            auto n = std::make_shared<node>();
            n->k = node::kind::both;
            n->a = *left;
            n->b = *right;
            left = node_ptr(n);
        }
        return left;
    }
    core::result<node_ptr> parse_not() {
        if (is_word("not")) {
            ++pos_;
            auto inner = parse_not();
            if (!inner) return inner;
            auto n = std::make_shared<node>();
            n->k = node::kind::negate;
            n->a = *inner;
            return node_ptr(n);
        }
        return parse_primary();
    }
    core::result<operand> parse_value() {
        const token& t = peek();
        if (t.k == token::kind::string) {
            ++pos_;
            return operand{false, t.text};
        }
        if (t.k == token::kind::word) {
            if (t.text.rfind("facts.", 0) == 0) {
                auto name = t.text.substr(6);
                if (!facts{}.get(name))
                    return error(fmt::format("unknown fact '{}' (known: {})", name,
                                             fmt::join(facts::names(), ", ")));
                ++pos_;
                return operand{true, name};
            }
            if (std::all_of(t.text.begin(), t.text.end(), [](char c) {
                    return std::isdigit(static_cast<unsigned char>(c)) || c == '.';
                })) {
                ++pos_;
                return operand{false, t.text};
            }
        }
        return error("expected facts.NAME, a quoted string or a number");
    }
    core::result<node_ptr> parse_primary() {
        if (is_op("(")) {
            ++pos_;
            auto inner = parse_or();
            if (!inner) return inner;
            if (!is_op(")")) return error("expected ')'");
            ++pos_;
            return inner;
        }
        if (is_word("true") || is_word("false")) {
            auto n = std::make_shared<node>();
            n->constant = peek().text == "true";
            ++pos_;
            return node_ptr(n);
        }
        auto left = parse_value();
        if (!left) return tl::unexpected(left.error());
        auto n = std::make_shared<node>();
        n->left = *left;
        if (is_op("==") || is_op("!=")) {
            n->k = peek().text == "==" ? node::kind::equal : node::kind::not_equal;
            ++pos_;
            auto right = parse_value();
            if (!right) return tl::unexpected(right.error());
            n->right.push_back(*right);
            return node_ptr(n);
        }
        n->k = node::kind::in;
        if (is_word("not")) {
            ++pos_;
            n->k = node::kind::not_in;
            if (!is_word("in")) return error("expected 'in' after 'not'");
        }
        if (!is_word("in")) return error("expected ==, != or in");
        ++pos_;
        if (!is_op("[")) return error("expected '[' to start a list");
        ++pos_;
        while (!is_op("]")) {
            auto v = parse_value();
            if (!v) return tl::unexpected(v.error());
            n->right.push_back(*v);
            if (is_op(",")) {
                ++pos_;
                continue;
            }
            if (!is_op("]")) return error("expected ',' or ']'");
        }
        ++pos_;
        return node_ptr(n);
    }

    std::vector<token> t_;
    std::size_t pos_ = 0;
};

bool eval(const node& n, const facts& f) {
    switch (n.k) {
        case node::kind::constant:
            return n.constant;
        case node::kind::equal:
            return n.left.value(f) == n.right[0].value(f);
        case node::kind::not_equal:
            return n.left.value(f) != n.right[0].value(f);
        case node::kind::in:
        case node::kind::not_in: {
            auto v = n.left.value(f);
            bool found = std::any_of(n.right.begin(), n.right.end(),
                                     [&](const operand& o) { return o.value(f) == v; });
            return n.k == node::kind::in ? found : !found;
        }
        case node::kind::negate:
            return !eval(*n.a, f);
        case node::kind::both:
            return eval(*n.a, f) && eval(*n.b, f);
        case node::kind::either:
            return eval(*n.a, f) || eval(*n.b, f);
    }
    return false;
}

}  // namespace

core::result<condition> condition::parse(std::string_view text) {
    auto tokens = tokenize(text);
    if (!tokens) return tl::unexpected(tokens.error());
    parser p(std::move(*tokens));
    auto root = p.parse_all();
    if (!root) return tl::unexpected(root.error());
    return condition(std::string(text), *root);
}

bool condition::evaluate(const facts& f) const {
    return eval(*root_, f);
}

}  // namespace tunnel::ops
