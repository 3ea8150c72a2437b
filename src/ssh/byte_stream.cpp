#include "ssh/byte_stream.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace tunnel::ssh {

core::result<std::pair<int, int>> open_socketpair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) != 0)
        return core::fail(core::errc::resource_exhausted,
                          fmt::format("socketpair failed: {}", std::strerror(errno)));
    // Bulk paths move megabytes at a time (ARCHITECTURE §4): big socket buffers.
    const int size = 1 << 20;
    for (int fd : fds) {
        (void)::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
        (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    }
    return std::pair{fds[0], fds[1]};
}

}  // namespace tunnel::ssh
