#include "core/secret_file.hpp"

#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace tunnel::core {

namespace {
constexpr std::size_t max_secret_file_bytes = 64 * 1024;
}

result<std::string> read_secret_file(const std::string& path, std::string_view what,
                                     std::size_t min_bytes) {
    const auto hint = fmt::format(
        "write a random one, e.g. `openssl rand -hex 32 > {}; chmod 600 {}`", path, path);
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        const int err = errno;
        return fail(err == ENOENT ? errc::not_found : errc::permission_denied,
                    fmt::format("{} {}: {}; {}", what, path, std::strerror(err), hint));
    }
    if (!S_ISREG(st.st_mode))
        return fail(errc::invalid_argument,
                    fmt::format("{} {}: not a regular file; {}", what, path, hint));
    if (static_cast<std::size_t>(st.st_size) > max_secret_file_bytes)
        return fail(errc::invalid_argument,
                    fmt::format("{} {}: {} bytes is not a secret file (at most {})", what, path,
                                st.st_size, max_secret_file_bytes));
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return fail(errno == EACCES ? errc::permission_denied : errc::io_error,
                    fmt::format("{} {}: cannot read: {}", what, path, std::strerror(errno)));
    std::ostringstream text;
    text << in.rdbuf();
    std::string secret = text.str();
    while (!secret.empty() && std::isspace(static_cast<unsigned char>(secret.back())))
        secret.pop_back();
    if (secret.size() < min_bytes)
        return fail(errc::invalid_argument,
                    fmt::format("{} {}: the secret is {} bytes, at least {} are needed; {}", what,
                                path, secret.size(), min_bytes, hint));
    return secret;
}

}  // namespace tunnel::core
