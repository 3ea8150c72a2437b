// OpenSSH certificates (PROTOCOL.certkeys, `ssh-keygen -s`): parsing a
// certificate blob from an untrusted source, checking the CA's signature,
// the validity window and the principals.
//
// libssh 0.10 can load a certificate and present it during user
// authentication, but it has no API to read a certificate's fields or to
// verify a CA signature, so both are done here (OpenSSL for the signature).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace tunnel::ssh {

enum class certificate_role : std::uint32_t { user = 1, host = 2 };

struct certificate {
    std::string type;      // "ssh-ed25519-cert-v01@openssh.com"
    std::string key_type;  // the certified key's type: "ssh-ed25519"
    std::string key_blob;  // the certified key as a plain public key blob
    std::uint64_t serial = 0;
    certificate_role role = certificate_role::user;
    std::string key_id;
    std::vector<std::string> principals;        // empty: any (OpenSSH's meaning)
    std::uint64_t valid_after = 0;              // seconds since the epoch
    std::uint64_t valid_before = 0;             // ~0: forever
    std::vector<std::string> critical_options;  // names only
    std::vector<std::string> extensions;        // names only
    std::string ca_key_blob;                    // the CA's public key blob
    std::string signature_algorithm;            // "ssh-ed25519", "rsa-sha2-512", ...
    std::string signature;                      // the inner signature bytes
    std::string signed_data;                    // every byte the CA signed
};

// True for the `*-cert-v01@openssh.com` key types.
[[nodiscard]] bool is_certificate_type(std::string_view type) noexcept;

// The certificate key type for a plain key type or host key algorithm:
// "ssh-ed25519" -> "ssh-ed25519-cert-v01@openssh.com", "rsa-sha2-512" ->
// "rsa-sha2-512-cert-v01@openssh.com"; empty when there is none.
[[nodiscard]] std::string certificate_algorithm_for(std::string_view key_algorithm);

// Parses a certificate blob (the decoded base64 of a `*-cert.pub` line or a
// host key sent by a server). Fails with protocol_error saying what is
// malformed; DSA certificates are refused as unsupported.
[[nodiscard]] core::result<certificate> parse_certificate(std::string_view blob);

// Checks the CA's signature over the certificate. CA keys: Ed25519, ECDSA
// (nistp256/384/521) and RSA (>= 1024 bits) with rsa-sha2-256/512; SHA-1
// `ssh-rsa` signatures are refused, as OpenSSH's default
// CASignatureAlgorithms does.
[[nodiscard]] core::result<void> verify_certificate_signature(const certificate& cert);

// Fails when `now` (seconds since the epoch) is outside the validity window,
// saying when the certificate expired or when it becomes valid.
[[nodiscard]] core::result<void> check_certificate_time(const certificate& cert, std::int64_t now);

// "2024-05-01 12:00:00 UTC"; "forever" for ~0, "the beginning of time" for 0.
[[nodiscard]] std::string format_certificate_time(std::uint64_t when);

// "SHA256:..." of a public key blob, as ssh-keygen -l prints it.
[[nodiscard]] std::string key_blob_fingerprint(std::string_view blob);

// `ID "key id" serial N, CA ED25519 SHA256:..., principals a,b` for messages
// (the key id and principals are sanitised: they come from the certificate).
[[nodiscard]] std::string describe_certificate(const certificate& cert);

// Standard base64 with padding, as in OpenSSH public key files.
[[nodiscard]] std::optional<std::string> decode_base64(std::string_view text);

}  // namespace tunnel::ssh
