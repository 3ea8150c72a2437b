// Errors as values (STYLE 6): every fallible library call returns core::result<T>.
#pragma once

#include <string>
#include <string_view>

#include <tl/expected.hpp>

namespace tunnel::core {

// Coarse conditions callers branch on. The message carries the detail and,
// wherever we know it, what the user should do next.
enum class errc {
    invalid_argument = 1,  // bad flag, spec, config value
    not_found,             // file, host, key missing
    permission_denied,     // local file permissions, sudo refused
    io_error,              // local I/O failure
    timeout,               // a deadline passed
    connection_failed,     // refused/reset/unreachable before the SSH handshake completed
    protocol_error,        // the peer broke the protocol
    host_key_unknown,      // no known_hosts entry and policy refuses new keys
    host_key_changed,      // known_hosts entry differs: possible MITM
    auth_failed,           // every authentication method was refused
    auth_unavailable,      // the server or agent could not be asked (retryable)
    channel_failed,        // channel open or request refused
    circuit_open,          // breaker is failing fast
    denied,                // refused by a local allow/deny rule
    resource_exhausted,    // a pool or buffer limit was hit
    cancelled,             // the caller cancelled
    disconnected,          // an established session went away
};

[[nodiscard]] std::string_view to_string(errc code) noexcept;

struct error {
    errc code;
    std::string message;

    // True for failures that happened before any remote command could have
    // started, so a retry cannot run anything twice.
    [[nodiscard]] bool before_start() const noexcept {
        return code == errc::connection_failed || code == errc::auth_unavailable ||
               code == errc::timeout;
    }
};

template <class T>
using result = tl::expected<T, error>;

[[nodiscard]] inline tl::unexpected<error> fail(errc code, std::string message) {
    return tl::unexpected<error>(error{code, std::move(message)});
}

}  // namespace tunnel::core
