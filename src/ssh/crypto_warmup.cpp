#include "ssh/crypto_warmup.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <mutex>

namespace tunnel::ssh {

void warm_up_crypto() noexcept {
    static std::once_flag once;  // sessions may connect from several threads
    std::call_once(once, [] {
        unsigned char byte = 0;
        (void)RAND_bytes(&byte, 1);  // instantiates the DRBGs: the bulk of the cost
        EVP_MD_free(EVP_MD_fetch(nullptr, "SHA256", nullptr));
        EVP_KEYMGMT_free(EVP_KEYMGMT_fetch(nullptr, "X25519", nullptr));
        EVP_KEYEXCH_free(EVP_KEYEXCH_fetch(nullptr, "X25519", nullptr));
        EVP_SIGNATURE_free(EVP_SIGNATURE_fetch(nullptr, "ED25519", nullptr));
    });
}

void skip_crypto_cleanup_at_exit() noexcept {
#if !defined(__SANITIZE_ADDRESS__)
    // Sanitized builds keep the cleanup: LeakSanitizer then sees OpenSSL's
    // tables freed rather than having to prove them reachable at exit.
    (void)OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr);
#endif
}

}  // namespace tunnel::ssh
