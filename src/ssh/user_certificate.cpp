#include "ssh/user_certificate.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "ssh/wire.hpp"

namespace tunnel::ssh {

namespace {

using core::errc;
using core::fail;

core::result<std::string> export_blob(ssh_key key, const char* what) {
    char* raw = nullptr;
    if (ssh_pki_export_pubkey_base64(key, &raw) != SSH_OK || raw == nullptr)
        return fail(errc::invalid_argument, fmt::format("cannot encode {}", what));
    ssh_string_handle b64(raw);
    auto blob = decode_base64(b64.get());
    if (!blob) return fail(errc::invalid_argument, fmt::format("cannot decode {}", what));
    return std::move(*blob);
}

}  // namespace

core::result<user_certificate> load_user_certificate(const std::string& path) {
    // libssh only says "error": open the file first for a message that says why.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        const int err = errno;
        return fail(err == ENOENT ? errc::not_found : errc::permission_denied,
                    fmt::format("cannot read certificate file {}: {}", path, std::strerror(err)));
    }
    ::close(fd);
    ssh_key raw = nullptr;
    if (ssh_pki_import_cert_file(path.c_str(), &raw) != SSH_OK || raw == nullptr)
        return fail(errc::invalid_argument,
                    fmt::format("certificate file {} holds no OpenSSH certificate (expected a "
                                "line like `ssh-ed25519-cert-v01@openssh.com AAAA...` written by "
                                "ssh-keygen -s)",
                                path));
    key_handle key(raw);
    auto blob = export_blob(key.get(), "a certificate");
    if (!blob) return tl::unexpected(blob.error());
    auto cert = parse_certificate(*blob);
    if (!cert)
        return fail(errc::invalid_argument,
                    fmt::format("certificate file {}: {}", path, cert.error().message));
    if (cert->role != certificate_role::user)
        return fail(errc::invalid_argument,
                    fmt::format("certificate file {} is a host certificate, not a user "
                                "certificate (sign user keys without -h)",
                                path));
    return user_certificate{path, std::move(*cert), std::move(key)};
}

core::result<std::string> plain_public_key_blob(ssh_key key) {
    ssh_key pub_raw = nullptr;
    if (ssh_pki_export_privkey_to_pubkey(key, &pub_raw) != SSH_OK || pub_raw == nullptr)
        return fail(errc::invalid_argument, "cannot take the public half of a key");
    key_handle pub(pub_raw);
    auto blob = export_blob(pub.get(), "a public key");
    if (!blob) return blob;
    // A certificate key exports the whole certificate: take the certified key.
    wire::reader r(*blob);
    if (auto type = r.string(); type && is_certificate_type(*type)) {
        auto cert = parse_certificate(*blob);
        if (!cert) return tl::unexpected(cert.error());
        return std::move(cert->key_blob);
    }
    return blob;
}

std::string user_certificate_problem(const user_certificate& uc, std::string_view key_blob,
                                     std::int64_t now) {
    if (uc.cert.key_blob != key_blob)
        return fmt::format("certifies another key ({}), not {}",
                           key_blob_fingerprint(uc.cert.key_blob), key_blob_fingerprint(key_blob));
    if (auto t = check_certificate_time(uc.cert, now); !t) return t.error().message;
    return {};
}

core::result<key_handle> attach_certificate(ssh_key private_key, const user_certificate& uc) {
    key_handle copy(ssh_key_dup(private_key));
    if (!copy) return fail(errc::resource_exhausted, "cannot copy a private key");
    if (ssh_pki_copy_cert_to_privkey(uc.key.get(), copy.get()) != SSH_OK)
        return fail(errc::invalid_argument,
                    fmt::format("cannot attach certificate {} to its key", uc.path));
    return copy;
}

}  // namespace tunnel::ssh
