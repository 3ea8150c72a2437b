// User certificates for public-key authentication: a `*-cert.pub` file
// loaded with libssh (which presents it to the server) and parsed by us
// (which tells the user why one cannot be used: wrong key, expired, ...).
#pragma once

#include <cstdint>
#include <string>

#include "core/error.hpp"
#include "ssh/certificate.hpp"
#include "ssh/handles.hpp"

namespace tunnel::ssh {

struct user_certificate {
    std::string path;
    certificate cert;
    key_handle key;  // libssh's public certificate key
};

// Loads a user certificate file (`ssh-ed25519-cert-v01@openssh.com AAAA...`).
// Fails with not_found or permission_denied (naming the file and the OS
// error) when it cannot be read, and invalid_argument when it holds no
// certificate, a malformed one, or a host certificate.
[[nodiscard]] core::result<user_certificate> load_user_certificate(const std::string& path);

// The plain public key blob of a libssh key (private, public or certificate:
// a certificate's certified key).
[[nodiscard]] core::result<std::string> plain_public_key_blob(ssh_key key);

// Why `uc` cannot be offered for a key whose public blob is `key_blob` at
// time `now`, or an empty string when it can: "certifies another key
// (SHA256:...), not SHA256:..." / "expired at 2024-05-01 12:00:00 UTC".
[[nodiscard]] std::string user_certificate_problem(const user_certificate& uc,
                                                   std::string_view key_blob, std::int64_t now);

// A private key carrying `uc` (libssh presents the certificate and signs with
// the key): a copy of `private_key` with the certificate attached.
[[nodiscard]] core::result<key_handle> attach_certificate(ssh_key private_key,
                                                          const user_certificate& uc);

}  // namespace tunnel::ssh
