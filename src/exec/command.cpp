#include "exec/command.hpp"

#include <fmt/format.h>

#include "core/shell_quote.hpp"

namespace tunnel::exec {

std::string command::display() const {
    if (argv.size() == 1) return argv.front();
    return core::shell_join(argv);
}

core::result<void> validate(const command& cmd) {
    if (cmd.argv.empty() ||
        (cmd.argv.size() == 1 && cmd.argv.front().find_first_not_of(" \t\n") == std::string::npos))
        return core::fail(core::errc::invalid_argument,
                          "no command given: put it after --, e.g. tunnel exec HOST -- uptime");
    for (const auto& word : cmd.argv)
        if (word.find('\0') != std::string::npos)
            return core::fail(core::errc::invalid_argument,
                              "the command contains a NUL byte, which SSH cannot carry");
    for (const auto& [name, value] : cmd.env) {
        if (!core::is_valid_env_name(name))
            return core::fail(
                core::errc::invalid_argument,
                fmt::format("invalid environment variable name \"{}\": use letters, digits and _ "
                            "(not starting with a digit), as in --env NAME=value",
                            name));
        if (value.find('\0') != std::string::npos)
            return core::fail(core::errc::invalid_argument,
                              fmt::format("--env {}: value contains a NUL byte", name));
    }
    if (cmd.cwd && cmd.cwd->empty())
        return core::fail(core::errc::invalid_argument,
                          "--cwd: empty directory; give a path such as /srv/app");
    if (cmd.sudo_user && cmd.sudo_user->empty())
        return core::fail(core::errc::invalid_argument, "--sudo-user: empty user name");
    if (cmd.timeout && cmd.timeout->count() <= 0)
        return core::fail(core::errc::invalid_argument,
                          "--timeout: must be greater than zero, e.g. 30s");
    return {};
}

std::string remote_command(const command& cmd, const sudo_markers* markers) {
    const std::string base = cmd.display();
    const bool sudo = cmd.sudo || cmd.sudo_user.has_value();
    if (!sudo && cmd.env.empty() && !cmd.cwd && !cmd.timeout)
        return base;  // exactly what ssh would send

    std::string inner;
    if (markers) inner += fmt::format("printf '%s\\n' {} >&2\n", core::shell_quote(markers->ready));
    if (cmd.cwd) inner += fmt::format("cd {} || exit 1\n", core::shell_quote(*cmd.cwd));
    inner += base;

    std::vector<std::string> words;
    if (sudo) {
        words.emplace_back("sudo");
        if (markers) {
            words.emplace_back("-S");
            words.emplace_back("-p");
            words.push_back(core::shell_quote(markers->prompt));
        } else {
            words.emplace_back("-n");
        }
        if (cmd.sudo_user) {
            words.emplace_back("-u");
            words.push_back(core::shell_quote(*cmd.sudo_user));
        }
        words.emplace_back("--");
    }
    if (!cmd.env.empty()) {
        words.emplace_back("env");
        for (const auto& [name, value] : cmd.env)
            words.push_back(core::shell_quote(name + "=" + value));
    }
    if (cmd.timeout) {
        words.emplace_back("timeout");
        // On a pty the command must stay in the terminal's foreground group;
        // closing the pty then hangs up its children.
        if (cmd.pty) words.emplace_back("--foreground");
        words.emplace_back("-k");
        words.push_back(fmt::format("{}s", timeout_kill_after.count()));
        words.push_back(fmt::format("{:.3f}s", static_cast<double>(cmd.timeout->count()) / 1000.0));
    }
    words.emplace_back("sh");
    words.emplace_back("-c");
    words.push_back(core::shell_quote(inner));
    return fmt::format("{}", fmt::join(words, " "));
}

}  // namespace tunnel::exec
