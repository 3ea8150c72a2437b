// Host certificates: `@cert-authority PATTERNS KEY` lines in known_hosts, as
// OpenSSH has them. A server whose plain host key is not in known_hosts is
// accepted when it holds a certificate for that key, signed by a CA that a
// @cert-authority line for this host trusts, naming the host we dialled (or
// HostKeyAlias) among its principals, valid now, of host type, without
// critical options, and neither key nor CA @revoked (a certificate that names
// no host is valid for any, as in OpenSSH 9.2, with a warning). libssh cannot
// receive certificates itself: see host_certificate_probe.hpp for how one is
// fetched.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "ssh/connect_options.hpp"
#include "ssh/handles.hpp"
#include "ssh/known_hosts.hpp"

namespace tunnel::ssh {

// Whether to look for a host certificate for `server_key`: host keys are
// checked (not StrictHostKeyChecking=no, no pinned fingerprint), no plain
// known_hosts entry already matches or revokes the key, and some
// @cert-authority line covers this destination.
[[nodiscard]] bool wants_host_certificate(const connect_options& opts, ssh_key server_key);
[[nodiscard]] bool wants_host_certificate(const connect_options& opts, ssh_key server_key,
                                          const known_hosts& kh);

// The certificate algorithm to ask the server for, for the key it used
// ("ssh-ed25519" -> "ssh-ed25519-cert-v01@openssh.com"); empty if none.
[[nodiscard]] std::string host_certificate_algorithm(ssh_key server_key);

// Checks `cert_blob` (from the server) for `server_key` against the
// @cert-authority lines for this destination at `now` (seconds since the
// epoch). Returns a description for logs; host_key_unknown with the reason
// ("expired at ...", "names other hosts (...)", "signed by CA SHA256:...,
// which no @cert-authority line for NAME trusts", ...) otherwise.
[[nodiscard]] core::result<std::string> check_host_certificate(const connect_options& opts,
                                                               ssh_key server_key,
                                                               std::string_view cert_blob,
                                                               std::int64_t now);

}  // namespace tunnel::ssh
