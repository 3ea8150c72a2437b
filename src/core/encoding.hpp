// Byte encodings and digests shared by the relay's tokens, key fingerprints
// and audit log: base64 (standard and URL-safe, RFC 4648), hex, SHA-256,
// HMAC-SHA256 and a constant-time comparison for secrets.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tunnel::core {

// Standard alphabet with '=' padding.
[[nodiscard]] std::string base64_encode(std::string_view bytes);
// Standard alphabet, padding required (HTTP Basic credentials). nullopt on any
// other character, missing or misplaced padding, or non-zero trailing bits.
[[nodiscard]] std::optional<std::string> base64_decode(std::string_view text);
// URL-safe alphabet ('-', '_'), no padding (JWT, JWK).
[[nodiscard]] std::string base64url_encode(std::string_view bytes);
// URL-safe alphabet; padding optional. nullopt on any other character or an
// impossible length.
[[nodiscard]] std::optional<std::string> base64url_decode(std::string_view text);

[[nodiscard]] std::string hex_encode(std::string_view bytes);  // lower case

// The 32-byte SHA-256 digest.
[[nodiscard]] std::string sha256(std::string_view bytes);
// The 32-byte HMAC-SHA256 of `bytes` under `key`.
[[nodiscard]] std::string hmac_sha256(std::string_view key, std::string_view bytes);
// Compares two secrets in time that depends on neither their contents nor
// their lengths (CRYPTO_memcmp over their SHA-256 digests).
[[nodiscard]] bool secret_equal(std::string_view a, std::string_view b) noexcept;
// "SHA256:<base64 without padding>", as OpenSSH prints key fingerprints.
[[nodiscard]] std::string sha256_fingerprint(std::string_view bytes);

}  // namespace tunnel::core
