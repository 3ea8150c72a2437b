#include "ssh/agent_forward_config.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "core/log_text.hpp"

namespace tunnel::ssh {

core::result<std::optional<std::string>> parse_forward_agent(std::string_view v) {
    auto is = [&](std::string_view word) {
        return v.size() == word.size() &&
               std::equal(v.begin(), v.end(), word.begin(), [](char a, char b) {
                   return std::tolower(static_cast<unsigned char>(a)) == b;
               });
    };
    if (is("yes") || is("true")) return std::optional<std::string>("yes");
    if (is("no") || is("false")) return std::optional<std::string>();
    if (v.empty())
        return core::fail(core::errc::invalid_argument,
                          "ForwardAgent must be yes, no, an agent socket path or $VAR, got \"\"");
    if (v.front() == '$') {
        std::string_view name = v.substr(1);
        if (name.size() >= 2 && name.front() == '{' && name.back() == '}')
            name = name.substr(1, name.size() - 2);
        const bool valid = !name.empty() &&
                           !std::isdigit(static_cast<unsigned char>(name.front())) &&
                           std::all_of(name.begin(), name.end(), [](char c) {
                               return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
                           });
        if (!valid)
            return core::fail(core::errc::invalid_argument,
                              fmt::format("ForwardAgent {}: not an environment variable name; "
                                          "write $SSH_AUTH_SOCK or ${{NAME}}",
                                          core::log_text(v, 64)));
    }
    return std::optional<std::string>(std::string(v));
}

core::result<std::string> agent_socket_to_forward(const std::string& spec) {
    if (spec.empty())
        return core::fail(core::errc::not_found,
                          "agent forwarding was asked for, but IdentityAgent none leaves no agent "
                          "to forward");
    std::string path = spec;
    if (spec.front() == '$') {
        std::string name = spec.substr(1);
        if (name.size() >= 2 && name.front() == '{' && name.back() == '}')
            name = name.substr(1, name.size() - 2);
        const char* value = name.empty() ? nullptr : std::getenv(name.c_str());
        if (!value || !*value)
            return core::fail(
                core::errc::not_found,
                fmt::format("agent forwarding was asked for, but ${} is not set: start an agent "
                            "(eval \"$(ssh-agent)\"; ssh-add) or name its socket with "
                            "-o ForwardAgent=PATH",
                            core::log_text(name, 64)));
        path = value;
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        return core::fail(core::errc::not_found,
                          fmt::format("agent forwarding was asked for, but the agent socket {} "
                                      "is not there ({}): is ssh-agent running?",
                                      core::log_text(path, 256), std::strerror(errno)));
    if (!S_ISSOCK(st.st_mode))
        return core::fail(core::errc::not_found,
                          fmt::format("agent forwarding was asked for, but {} is not a socket",
                                      core::log_text(path, 256)));
    return path;
}

}  // namespace tunnel::ssh
