// The cipher list tunnel offers when the user's config sets no Ciphers: AES-GCM
// first on a CPU with AES instructions (AES-NI, ARMv8 AES), where libssh's
// AES-GCM (OpenSSL) is much faster than its chacha20-poly1305; chacha20 first
// elsewhere, where it is the faster of the two. The server picks the first
// entry of ours that it also has (RFC 4253 §7.1), so this decides the cipher.
#pragma once

#include <string>

namespace tunnel::ssh {

// True when the CPU has AES instructions (checked once, at run time).
[[nodiscard]] bool cpu_has_aes() noexcept;

// The default list for a CPU with (true) or without AES instructions.
[[nodiscard]] std::string default_ciphers(bool has_aes);
[[nodiscard]] inline std::string default_ciphers() {
    return default_ciphers(cpu_has_aes());
}

}  // namespace tunnel::ssh
