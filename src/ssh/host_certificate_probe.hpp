// Fetching a server's host certificate, which libssh cannot do.
//
// libssh 0.10 (and libssh's master branch as of this writing) removes every
// `*-cert-v01@openssh.com` algorithm from the host key algorithms a client
// offers (kex.c, ssh_client_select_hostkeys: "This removes the certificate
// types, unsupported for now"), so a session never receives a host
// certificate. A certificate is public data whose authenticity comes from
// the CA's signature alone, and the libssh session already proved that the
// server holds the private key of the host key it negotiated. So the
// certificate is fetched over a second, short connection to the same server:
// the version exchange, a KEXINIT that offers only the certificate algorithm
// for that key type, and a curve25519 KEX_ECDH_INIT; the certificate is the
// host key in the server's KEX_ECDH_REPLY. The connection is closed there:
// nothing is authenticated or sent over it. The certificate is then checked
// against the session's key (host_certificate.hpp).
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "core/asio.hpp"
#include "core/error.hpp"

namespace tunnel::ssh {

// Reads the host certificate the server at the other end of `fd` (a fresh
// connected stream; closed on return) presents for `cert_algorithm`
// ("ssh-ed25519-cert-v01@openssh.com"). Fails with protocol_error when the
// server has no certificate for that algorithm (naming the algorithms it
// has), timeout at `deadline`, and connection_failed when it hangs up.
[[nodiscard]] asio::awaitable<core::result<std::string>> fetch_host_certificate(
    asio::any_io_executor executor, int fd, std::string cert_algorithm,
    std::chrono::steady_clock::time_point deadline);

}  // namespace tunnel::ssh
