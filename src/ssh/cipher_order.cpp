#include "ssh/cipher_order.hpp"

#if defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace tunnel::ssh {

bool cpu_has_aes() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    static const bool has = __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul");
    return has;
#elif defined(__aarch64__)
    static const bool has = (::getauxval(AT_HWCAP) & HWCAP_AES) != 0;
    return has;
#else
    return false;
#endif
}

namespace {

// The same set either way (OpenSSH's defaults, which libssh 0.10 has); only
// the order differs. Whole literals: g++ 12 -O2 warns (-Warray-bounds) on
// concatenated short strings.
constexpr const char* aes_first =
    "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,"
    "aes192-ctr,aes256-ctr";
constexpr const char* chacha_first =
    "chacha20-poly1305@openssh.com,aes128-gcm@openssh.com,aes256-gcm@openssh.com,aes128-ctr,"
    "aes192-ctr,aes256-ctr";

}  // namespace

std::string default_ciphers_to_server(bool has_aes) {
    return has_aes ? aes_first : chacha_first;
}

std::string default_ciphers_from_server(bool has_aes) {
    return has_aes ? aes_first : chacha_first;
}

}  // namespace tunnel::ssh
