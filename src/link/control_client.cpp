#include "link/control_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "core/unique_fd.hpp"

namespace tunnel::link {

namespace {

constexpr std::size_t max_reply = 16 * 1024 * 1024;

core::result<void> send_all(int fd, std::string data) {
    while (!data.empty()) {
        const auto n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            return core::fail(core::errc::disconnected, "the manager closed the control socket");
        data.erase(0, static_cast<std::size_t>(n));
    }
    return {};
}

// Reads until a newline; `buffer` keeps what follows it. timeout < 0: none.
core::result<std::string> read_line(int fd, std::string& buffer, int timeout_ms) {
    for (;;) {
        if (auto nl = buffer.find('\n'); nl != std::string::npos) {
            auto line = buffer.substr(0, nl);
            buffer.erase(0, nl + 1);
            return line;
        }
        if (buffer.size() > max_reply)
            return core::fail(core::errc::protocol_error, "control reply too long");
        pollfd p{fd, POLLIN, 0};
        const int ready = ::poll(&p, 1, timeout_ms);
        if (ready < 0 && errno == EINTR) continue;
        if (ready == 0)
            return core::fail(core::errc::timeout, "the manager did not answer in time");
        char buf[8192];
        const auto n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            return core::fail(core::errc::disconnected, "the manager closed the connection");
        buffer.append(buf, static_cast<std::size_t>(n));
    }
}

}  // namespace

core::result<core::unique_fd> dial_control(const std::string& path, bool nonblocking) {
    if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path))
        return core::fail(core::errc::invalid_argument,
                          fmt::format("control socket path must be 1-{} bytes",
                                      sizeof(sockaddr_un::sun_path) - 1));
    core::unique_fd fd(
        ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0));
    if (fd.get() < 0)
        return core::fail(core::errc::io_error, fmt::format("socket: {}", std::strerror(errno)));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        return core::fail(core::errc::connection_failed,
                          fmt::format("no `tunnel up` is listening on {} ({}): start one with "
                                      "`tunnel up links.yaml`, or give its --control path",
                                      path, std::strerror(errno)));
    return fd;
}

core::result<nlohmann::json> control_call(const std::string& path, const nlohmann::json& request,
                                          std::chrono::milliseconds timeout) {
    auto fd = dial_control(path);
    if (!fd) return tl::unexpected(fd.error());
    if (auto s = send_all(fd->get(), request.dump() + "\n"); !s) return tl::unexpected(s.error());
    std::string buffer;
    auto line = read_line(fd->get(), buffer, static_cast<int>(timeout.count()));
    if (!line) return tl::unexpected(line.error());
    auto j = nlohmann::json::parse(*line, nullptr, false);
    if (j.is_discarded() || !j.is_object())
        return core::fail(core::errc::protocol_error, "the manager's reply is not a JSON object");
    return j;
}

core::result<void> control_follow(const std::string& path,
                                  const std::function<bool(const std::string&)>& on_line) {
    auto fd = dial_control(path);
    if (!fd) return tl::unexpected(fd.error());
    if (auto s = send_all(fd->get(), "{\"cmd\":\"events\"}\n"); !s) return s;
    std::string buffer;
    for (;;) {
        auto line = read_line(fd->get(), buffer, -1);
        if (!line) {
            if (line.error().code == core::errc::disconnected) return {};
            return tl::unexpected(line.error());
        }
        if (!on_line(*line)) return {};
    }
}

}  // namespace tunnel::link
