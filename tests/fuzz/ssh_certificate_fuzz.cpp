// libFuzzer target: OpenSSH certificate blobs (ssh/certificate), which a
// server sends as its host key (the @cert-authority check) and users keep in
// `*-cert.pub` files. Parsing must never crash or read out of bounds; a
// parsed certificate's fields must lie within the input, and checking its
// signature, validity and description must not crash either.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ssh/certificate.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace tunnel::ssh;
    std::string_view in(reinterpret_cast<const char*>(data), size);
    auto cert = parse_certificate(in);
    if (!cert) return 0;
    if (cert->signed_data.size() > size || cert->ca_key_blob.size() > size ||
        cert->key_blob.size() > size + 64)
        std::abort();
    (void)verify_certificate_signature(*cert);
    (void)check_certificate_time(*cert, 1735689600);
    (void)describe_certificate(*cert);
    (void)format_certificate_time(cert->valid_before);
    return 0;
}
