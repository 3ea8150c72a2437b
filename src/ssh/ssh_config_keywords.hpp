// Per-keyword semantics of ssh_config: validating a keyword's arguments and
// applying them to the settings being resolved (first obtained value wins;
// IdentityFile, CertificateFile and SendEnv accumulate). Internal to
// src/ssh/ssh_config_*.cpp; not part of the public API.
#pragma once

#include <bitset>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "ssh/ssh_config.hpp"
#include "ssh/ssh_config_syntax.hpp"

namespace tunnel::ssh::config_keywords {

using config_syntax::kw;

// What resolve() has obtained so far for one destination.
struct resolve_state {
    const resolve_context* ctx = nullptr;
    std::string alias;
    host_config cfg;
    std::bitset<config_syntax::k_count> obtained;
    // Paths are expanded once every value is known; each remembers the line
    // it came from so an expansion error can name it.
    struct raw_path {
        std::string value;
        std::string origin;
    };
    std::string origin;  // of the entry being applied
    std::vector<raw_path> raw_identity_files, raw_certificate_files;
    std::optional<std::vector<raw_path>> raw_user_known_hosts;
    std::string identity_agent_origin;
    std::string forward_agent_origin;
    std::string proxy_command_origin;

    // First obtained value wins.
    bool take(kw id) {
        if (obtained[id]) return false;
        obtained[id] = true;
        return true;
    }

    // The host `Match host` compares against: HostName so far, else the alias.
    [[nodiscard]] std::string current_hostname() const {
        if (!obtained[config_syntax::k_hostname]) return alias;
        config_syntax::token_fn values = [&](char) { return alias; };
        auto h = config_syntax::expand_tokens(cfg.hostname, config_syntax::hostname_tokens, false,
                                              &values, *ctx);
        return h ? *h : alias;
    }
    [[nodiscard]] std::string current_user() const {
        return obtained[config_syntax::k_user] ? cfg.user : ctx->local_user;
    }
};

// Validates `args` for keyword `id` and, when `st` is set, applies them with
// first-wins / accumulate semantics. Messages carry no location: callers
// prefix "file:line: " or "-o ...: ".
[[nodiscard]] core::result<void> apply_option(int id, const std::vector<std::string>& args,
                                              resolve_state* st);

// `e` with "origin: " in front of its message.
[[nodiscard]] core::error at(const std::string& origin, const core::error& e);

}  // namespace tunnel::ssh::config_keywords
