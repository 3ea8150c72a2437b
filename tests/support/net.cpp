#include "support/net.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace tunnel::test {
namespace {

sockaddr_in loopback_address(std::uint16_t port, const std::string& host) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    if (::inet_pton(AF_INET, host.c_str(), &address.sin_addr) != 1)
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

}  // namespace

loopback_listener listen_loopback(int extra_type_flags) {
    loopback_listener l;
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | extra_type_flags, 0);
    if (fd < 0) return l;
    sockaddr_in addr = loopback_address(0, "127.0.0.1");
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd, 16) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        ::close(fd);
        return l;
    }
    l.fd = fd;
    l.port = ntohs(addr.sin_port);
    return l;
}

namespace {

// The kernel's choice: bind 127.0.0.1:0.
core::result<std::uint16_t> kernel_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return core::fail(core::errc::io_error, std::string("socket: ") + std::strerror(errno));
    auto address = loopback_address(0, "127.0.0.1");
    socklen_t length = sizeof address;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
        const int err = errno;
        ::close(fd);
        return core::fail(core::errc::io_error,
                          std::string("bind 127.0.0.1:0: ") + std::strerror(err));
    }
    ::close(fd);
    return ntohs(address.sin_port);
}

// Whether nothing is bound to 127.0.0.1:port (nor to any address at it).
bool bindable(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    const auto address = loopback_address(port, "127.0.0.1");
    const bool ok = ::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    return ok;
}

// The first port of the ephemeral range, or 0 if unknown.
unsigned ephemeral_low() {
    std::FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (!f) return 0;
    unsigned low = 0, high = 0;
    const bool ok = std::fscanf(f, "%u %u", &low, &high) == 2;
    std::fclose(f);
    return ok ? low : 0;
}

}  // namespace

core::result<std::uint16_t> unused_port() {
    constexpr unsigned first = 20000;
    static const unsigned low = ephemeral_low();
    if (low < first + 2000 || low > 65535) return kernel_port();
    const unsigned span = low - first;
    const int fd = ::open("/tmp/tunnel-test-ports", O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) return kernel_port();
    if (::flock(fd, LOCK_EX) != 0) {
        ::close(fd);
        return kernel_port();
    }
    char text[16] = {};
    const auto got = ::pread(fd, text, sizeof text - 1, 0);
    unsigned next = got > 0 ? static_cast<unsigned>(std::strtoul(text, nullptr, 10)) : 0;
    std::uint16_t port = 0;
    for (unsigned tries = 0; tries < 200 && port == 0; ++tries) {
        const auto candidate = static_cast<std::uint16_t>(first + next % span);
        next = (next + 1) % span;
        if (bindable(candidate)) port = candidate;
    }
    const auto out = std::to_string(next);
    const bool saved = ::ftruncate(fd, 0) == 0 &&
                       ::pwrite(fd, out.data(), out.size(), 0) == static_cast<ssize_t>(out.size());
    ::flock(fd, LOCK_UN);
    ::close(fd);
    if (port == 0 || !saved) return kernel_port();
    return port;
}

bool port_accepts(std::uint16_t port, const std::string& host) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    const auto address = loopback_address(port, host);
    const bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    return ok;
}

bool wait_for_port(std::uint16_t port, std::chrono::milliseconds timeout, const std::string& host) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (port_accepts(port, host)) return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

int connect_from(const std::string& source, std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in local{};
    local.sin_family = AF_INET;
    ::inet_pton(AF_INET, source.c_str(), &local.sin_addr);
    sockaddr_in remote{};
    remote.sin_family = AF_INET;
    remote.sin_port = htons(port);
    ::inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0 ||
        ::connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof remote) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

}  // namespace tunnel::test
