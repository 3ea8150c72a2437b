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

std::string default_ciphers(bool has_aes) {
    // The same set either way (OpenSSH's defaults, which libssh 0.10 has), only the order differs.
    constexpr const char* aead_aes = "aes128-gcm@openssh.com,aes256-gcm@openssh.com";
    constexpr const char* chacha = "chacha20-poly1305@openssh.com";
    constexpr const char* ctr = "aes128-ctr,aes192-ctr,aes256-ctr";
    return has_aes ? std::string(aead_aes) + "," + chacha + "," + ctr
                   : std::string(chacha) + "," + aead_aes + "," + ctr;
}

}  // namespace tunnel::ssh
