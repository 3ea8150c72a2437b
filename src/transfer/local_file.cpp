#include "transfer/local_file.hpp"

#include <sys/statvfs.h>
#include <unistd.h>

#include <cstring>

#include <fmt/format.h>

namespace tunnel::transfer {

core::error errno_error(std::string_view what, const std::string& path, int e) {
    auto code = core::errc::io_error;
    if (e == ENOENT || e == ENOTDIR) code = core::errc::not_found;
    if (e == EACCES || e == EPERM) code = core::errc::permission_denied;
    if (e == ENOSPC || e == EDQUOT) code = core::errc::resource_exhausted;
    return {code, fmt::format("{} {}: {}", what, path, std::strerror(e))};
}

void fd_guard::reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

core::result<std::string> pread_block(int fd, std::uint64_t offset, std::size_t n,
                                      const std::string& path) {
    std::string buf(n, '\0');
    std::size_t got = 0;
    while (got < n) {
        ssize_t r = ::pread(fd, buf.data() + got, n - got, static_cast<off_t>(offset + got));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return tl::unexpected(errno_error("cannot read", path));
        if (r == 0) break;
        got += static_cast<std::size_t>(r);
    }
    buf.resize(got);
    return buf;
}

std::optional<std::uint64_t> local_free(const std::string& dir) {
    struct statvfs v {};
    if (::statvfs(dir.c_str(), &v) != 0) return std::nullopt;
    return static_cast<std::uint64_t>(v.f_bavail) * v.f_frsize;
}

}  // namespace tunnel::transfer
