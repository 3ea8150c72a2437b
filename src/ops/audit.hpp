// `tunnel audit-host`: one read-only script collects sshd's effective
// settings, listening ports, firewall state, sudo rules, password accounts,
// pending security updates and fail2ban status; each check gets a verdict.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace tunnel::ops {

enum class verdict { pass, warn, fail };
[[nodiscard]] std::string_view to_string(verdict v) noexcept;

struct audit_check {
    std::string id;     // "sshd.password_authentication"
    std::string title;  // "SSH password authentication"
    verdict result = verdict::pass;
    std::string detail;  // what was found, and what to do when not pass
};

struct audit_report {
    std::vector<audit_check> checks;
    [[nodiscard]] std::size_t count(verdict v) const;
};

// Read-only; run it as root (sudo) for sshd -T, /etc/shadow and sudoers.
[[nodiscard]] std::string audit_script();
// `ssh_port` is the port the audit connected to (the one expected to listen).
[[nodiscard]] core::result<audit_report> evaluate_audit(std::string_view output,
                                                        std::uint16_t ssh_port);

[[nodiscard]] nlohmann::json to_json(const audit_report& r);
[[nodiscard]] std::string format_audit(const audit_report& r, std::string_view target);

// `journalctl -u UNIT -n N --no-pager [-f]`, the unit name checked.
[[nodiscard]] core::result<std::string> journal_command(std::string_view unit, unsigned lines,
                                                        bool follow);

}  // namespace tunnel::ops
