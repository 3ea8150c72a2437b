// Allow/deny rules for the commands tunnel runs on remote hosts (exec, run,
// script). A guard rail against mistakes such as `tunnel run -- rm -rf /`
// on the wrong inventory, and a way to restrict a config to a known set of
// commands.
//
// Patterns are core::glob_match globs (`*` any run, `?` one character,
// case-sensitive) over the whole command string. `*` also matches shell
// syntax: `allow:systemctl status *` allows `systemctl status x; reboot`,
// and `deny:rm *` does not see `r''m -rf /`. A deny list is therefore not a
// security boundary against someone who means to get around it; a short
// list of exact allow rules comes closer.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace tunnel::exec {

enum class rule_action { allow, deny };

[[nodiscard]] std::string_view to_string(rule_action action) noexcept;

struct command_rule {
    rule_action action;
    std::string pattern;

    friend bool operator==(const command_rule&, const command_rule&) = default;
};

// Parses the config/CLI form `allow:PATTERN` or `deny:PATTERN`. The pattern
// is everything after the first ':' (it may itself contain ':'), taken
// verbatim. Fails with errc::invalid_argument, quoting the input, when the
// action is not exactly `allow` or `deny`, the ':' is missing, the pattern
// is empty, or the pattern starts or ends with whitespace (`allow: ls`
// would never match `ls`).
[[nodiscard]] core::result<command_rule> parse_rule(std::string_view text);

// An ordered list of rules. A command is refused if it matches any deny
// rule (wherever it sits in the list: deny wins over allow), or if there is
// at least one allow rule and it matches none of them. An empty list allows
// everything.
class command_rules {
  public:
    command_rules() = default;
    explicit command_rules(std::vector<command_rule> rules) : rules_(std::move(rules)) {}

    // Parses each element with parse_rule; fails on the first bad one.
    [[nodiscard]] static core::result<command_rules> parse(const std::vector<std::string>& texts);

    void add(command_rule rule) { rules_.push_back(std::move(rule)); }

    // Checks a command given as one shell string, as `tunnel exec host -- 'cmd'`
    // sends it. On refusal: errc::denied, with a message naming the command
    // and the rule, e.g.
    //   command "rm -rf /" denied by rule deny "rm *"
    //   command "reboot" denied: it matches no allow rule (allow "uptime", allow "df *")
    [[nodiscard]] core::result<void> check(std::string_view command) const;

    // Checks a command given as argv. Rules see core::shell_join(argv), the
    // string the remote shell will run. Deny rules are also tried against
    // the arguments joined by plain spaces, so quoting cannot hide a
    // command from them: argv {"sh", "-c", "rm -rf /"} is refused by
    // `deny:*rm -rf*`.
    [[nodiscard]] core::result<void> check(const std::vector<std::string>& argv) const;

    [[nodiscard]] const std::vector<command_rule>& rules() const noexcept { return rules_; }
    [[nodiscard]] bool empty() const noexcept { return rules_.empty(); }

  private:
    [[nodiscard]] core::result<void> check_forms(std::string_view shown,
                                                 std::string_view deny_extra) const;

    std::vector<command_rule> rules_;
};

}  // namespace tunnel::exec
