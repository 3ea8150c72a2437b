// Client authentication for session::connect, in OpenSSH's order: none,
// ssh-agent, each identity file (its certificates first: `KEY-cert.pub`
// beside it and any CertificateFile that certifies it), keyboard-interactive
// (each prompt asked separately, round after round), then password.
// A partial success (AuthenticationMethods publickey,keyboard-interactive)
// moves on to the methods the server still wants.
#pragma once

#include "core/asio.hpp"
#include "core/error.hpp"
#include "ssh/session.hpp"

namespace tunnel::ssh {

// Authenticates `s` (connected, host key verified) within `deadline`.
// auth_failed when every method was refused; the message lists what the
// server accepts, what was tried and why certificates or prompts could not
// be used (expired, another key, no terminal, BatchMode).
[[nodiscard]] asio::awaitable<core::result<void>> authenticate(session& s, time_point deadline);

// Server text (keyboard-interactive name, instruction, prompt) made safe to
// print on a terminal: control characters other than newline and tab become
// \xNN, and it is cut to `max_bytes`.
[[nodiscard]] std::string terminal_safe(std::string_view text, std::size_t max_bytes = 1024);

}  // namespace tunnel::ssh
