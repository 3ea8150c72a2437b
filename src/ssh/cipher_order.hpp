// The cipher lists tunnel offers when the user's config sets no Ciphers, one
// per direction (SSH negotiates each direction on its own; the server takes
// the first entry of ours that it also has, RFC 4253 §7.1):
//   to the server (uploads: libssh encrypts): AES-GCM first on a CPU with AES
//     instructions, where libssh's AES-GCM (OpenSSL) is much faster than its
//     chacha20-poly1305; chacha20 first elsewhere;
//   from the server (downloads: libssh decrypts): chacha20-poly1305 first,
//     measured faster than AES-GCM there (docs/ssh.md "Default ciphers").
#pragma once

#include <string>

namespace tunnel::ssh {

// True when the CPU has AES instructions (checked once, at run time).
[[nodiscard]] bool cpu_has_aes() noexcept;

// Client to server, for a CPU with (true) or without AES instructions.
[[nodiscard]] std::string default_ciphers_to_server(bool has_aes);
[[nodiscard]] inline std::string default_ciphers_to_server() {
    return default_ciphers_to_server(cpu_has_aes());
}
// Server to client.
[[nodiscard]] std::string default_ciphers_from_server();

}  // namespace tunnel::ssh
