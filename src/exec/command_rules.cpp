#include "exec/command_rules.hpp"

#include "core/glob.hpp"
#include "core/shell_quote.hpp"

namespace tunnel::exec {

namespace {

constexpr std::string_view rule_syntax =
    "expected allow:PATTERN or deny:PATTERN, e.g. deny:rm -rf *";

// Quotes text for a one-line message: control bytes become \xNN.
std::string quote_for_message(std::string_view text) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = "\"";
    for (unsigned char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f) {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 0xf];
        } else {
            out += static_cast<char>(c);
        }
    }
    out += '"';
    return out;
}

std::string describe(const command_rule& rule) {
    return std::string(to_string(rule.action)) + " " + quote_for_message(rule.pattern);
}

bool is_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

std::string join_plain(const std::vector<std::string>& argv) {
    std::string out;
    for (const auto& arg : argv) {
        if (&arg != &argv.front()) out += ' ';
        out += arg;
    }
    return out;
}

}  // namespace

std::string_view to_string(rule_action action) noexcept {
    switch (action) {
        case rule_action::allow:
            return "allow";
        case rule_action::deny:
            return "deny";
    }
    return "unknown";
}

core::result<command_rule> parse_rule(std::string_view text) {
    auto invalid = [&](std::string_view reason) {
        return core::fail(
            core::errc::invalid_argument,
            "invalid command rule " + quote_for_message(text) + ": " + std::string(reason));
    };
    const auto colon = text.find(':');
    if (colon == std::string_view::npos) return invalid(rule_syntax);
    const std::string_view action = text.substr(0, colon);
    const std::string_view pattern = text.substr(colon + 1);
    command_rule rule{rule_action::allow, std::string(pattern)};
    if (action == "allow") {
        rule.action = rule_action::allow;
    } else if (action == "deny") {
        rule.action = rule_action::deny;
    } else {
        return invalid("unknown action " + quote_for_message(action) + "; " +
                       std::string(rule_syntax));
    }
    if (pattern.empty()) return invalid("empty pattern; " + std::string(rule_syntax));
    if (is_space(pattern.front()) || is_space(pattern.back())) {
        return invalid("pattern starts or ends with whitespace, so it would not match as written");
    }
    return rule;
}

core::result<command_rules> command_rules::parse(const std::vector<std::string>& texts) {
    std::vector<command_rule> rules;
    rules.reserve(texts.size());
    for (const auto& text : texts) {
        auto rule = parse_rule(text);
        if (!rule) return tl::unexpected(std::move(rule.error()));
        rules.push_back(std::move(*rule));
    }
    return command_rules(std::move(rules));
}

core::result<void> command_rules::check(std::string_view command) const {
    return check_forms(command, command);
}

core::result<void> command_rules::check(const std::vector<std::string>& argv) const {
    const std::string joined = core::shell_join(argv);
    const std::string plain = join_plain(argv);
    return check_forms(joined, plain);
}

core::result<void> command_rules::check_forms(std::string_view shown,
                                              std::string_view deny_extra) const {
    for (const auto& rule : rules_) {
        if (rule.action != rule_action::deny) continue;
        if (core::glob_match(rule.pattern, shown) || core::glob_match(rule.pattern, deny_extra)) {
            return core::fail(core::errc::denied, "command " + quote_for_message(shown) +
                                                      " denied by rule " + describe(rule));
        }
    }
    bool any_allow = false;
    for (const auto& rule : rules_) {
        if (rule.action != rule_action::allow) continue;
        any_allow = true;
        if (core::glob_match(rule.pattern, shown)) return {};
    }
    if (!any_allow) return {};

    // List the allow rules so the user sees what would have been accepted.
    constexpr std::size_t max_listed = 5;
    std::string message =
        "command " + quote_for_message(shown) + " denied: it matches no allow rule (";
    std::size_t listed = 0;
    std::size_t total = 0;
    for (const auto& rule : rules_) {
        if (rule.action != rule_action::allow) continue;
        if (listed < max_listed) {
            if (listed != 0) message += ", ";
            message += describe(rule);
            ++listed;
        }
        ++total;
    }
    if (total > listed) message += ", and " + std::to_string(total - listed) + " more";
    message += ")";
    return core::fail(core::errc::denied, std::move(message));
}

}  // namespace tunnel::exec
