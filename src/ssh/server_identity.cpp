// The relay's SSH host key: loaded, generated on first use, or ephemeral
// (server_session.hpp). Split from server_session.cpp.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/log_text.hpp"
#include "ssh/host_key_verifier.hpp"
#include "ssh/server_session.hpp"

namespace tunnel::ssh {

core::result<server_identity> server_identity::load_or_generate(const std::string& path) {
    ssh_key raw = nullptr;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        if (errno != ENOENT)
            return core::fail(core::errc::io_error, fmt::format("cannot read host key {}: {}", path,
                                                                std::strerror(errno)));
        if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &raw) != SSH_OK)
            return core::fail(core::errc::io_error, "cannot generate an ed25519 host key");
        key_handle fresh(raw);
        char* text = nullptr;
        if (ssh_pki_export_privkey_base64(fresh.get(), nullptr, nullptr, nullptr, &text) !=
                SSH_OK ||
            !text)
            return core::fail(core::errc::io_error, "cannot encode the generated host key");
        std::string pem(text);
        ssh_string_free_char(text);
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
            return core::fail(core::errc::io_error,
                              fmt::format("cannot create host key {}: {} (is its directory "
                                          "writable?)",
                                          path, std::strerror(errno)));
        bool ok = ::write(fd, pem.data(), pem.size()) == static_cast<ssize_t>(pem.size());
        ok = (::close(fd) == 0) && ok;
        if (!ok)
            return core::fail(core::errc::io_error, fmt::format("cannot write host key {}", path));
        spdlog::info("generated a new ed25519 host key in {}", path);
        raw = fresh.release();
    } else {
        if ((st.st_mode & 077) != 0)
            return core::fail(
                core::errc::permission_denied,
                fmt::format("host key {} is readable by others (mode {:o}): run chmod 600 {}", path,
                            st.st_mode & 0777, path));
        if (ssh_pki_import_privkey_file(path.c_str(), nullptr, nullptr, nullptr, &raw) != SSH_OK)
            return core::fail(core::errc::invalid_argument,
                              fmt::format("{} is not an unencrypted OpenSSH private key", path));
    }
    return from_key(key_handle(raw), path);
}

core::result<server_identity> server_identity::ephemeral() {
    ssh_key raw = nullptr;
    if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &raw) != SSH_OK)
        return core::fail(core::errc::io_error, "cannot generate an ed25519 host key");
    return from_key(key_handle(raw), "(ephemeral key)");
}

core::result<server_identity> server_identity::from_key(key_handle key, const std::string& what) {
    std::string fp = ssh::fingerprint(key.get());
    bind_handle bind(ssh_bind_new());
    if (!bind) return core::fail(core::errc::resource_exhausted, "cannot allocate an SSH bind");
    bool off = false;
    ssh_bind_options_set(bind.get(), SSH_BIND_OPTIONS_PROCESS_CONFIG, &off);
    // The bind takes ownership of the key.
    if (ssh_bind_options_set(bind.get(), SSH_BIND_OPTIONS_IMPORT_KEY, key.get()) != SSH_OK)
        return core::fail(core::errc::invalid_argument,
                          fmt::format("libssh refused the host key {}", what));
    (void)key.release();
    return server_identity(std::move(bind), std::move(fp));
}

}  // namespace tunnel::ssh
