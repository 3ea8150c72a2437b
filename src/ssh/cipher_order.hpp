// The cipher lists tunnel offers when the user's config sets no Ciphers, one
// per direction (SSH negotiates each direction on its own; the server takes
// the first entry of ours that it also has, RFC 4253 §7.1):
//   AES-GCM first on a CPU with AES instructions, chacha20-poly1305 first
//   elsewhere, the same rule both ways:
//   to the server (uploads: libssh encrypts): libssh's AES-GCM (OpenSSL) is
//     much faster than its chacha20-poly1305;
//   from the server (downloads: sshd encrypts, libssh decrypts): libssh
//     decrypts either at the same cost, but sshd encrypts chacha20-poly1305
//     with OpenSSH's own poly1305: 0.3 s more server CPU per 256 MiB, which on
//     a loaded or small machine is what limits a download (docs/ssh.md
//     "Default ciphers", docs/benchmarks.md).
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
// Server to client, likewise.
[[nodiscard]] std::string default_ciphers_from_server(bool has_aes);
[[nodiscard]] inline std::string default_ciphers_from_server() {
    return default_ciphers_from_server(cpu_has_aes());
}

}  // namespace tunnel::ssh
