#include "ui/control_stream.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "link/control_client.hpp"

namespace tunnel::ui {

namespace {

constexpr std::size_t max_line = 16 * 1024 * 1024;
constexpr std::size_t max_queued = 64 * 1024;

}  // namespace

core::result<control_stream> control_stream::open(const std::string& path) {
    auto fd = link::dial_control(path, true);
    if (!fd) return tl::unexpected(fd.error());
    return control_stream(std::move(*fd));
}

core::result<void> control_stream::send(const nlohmann::json& request) {
    if (!is_open()) return core::fail(core::errc::disconnected, "not connected to the manager");
    auto line = request.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    if (out_.size() + line.size() > max_queued)
        return core::fail(core::errc::resource_exhausted,
                          "the manager is not reading its control socket");
    out_ += line;
    return flush();
}

pollfd control_stream::poll_entry() const {
    pollfd p{fd_.get(), POLLIN, 0};
    if (!out_.empty()) p.events |= POLLOUT;
    return p;
}

core::result<void> control_stream::flush() {
    while (!out_.empty()) {
        const auto n = ::send(fd_.get(), out_.data(), out_.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return {};
        if (n <= 0) {
            close();
            return core::fail(core::errc::disconnected, "the manager closed the control socket");
        }
        out_.erase(0, static_cast<std::size_t>(n));
    }
    return {};
}

core::result<void> control_stream::on_ready(short revents, std::vector<std::string>& lines) {
    if (!is_open()) return core::fail(core::errc::disconnected, "not connected to the manager");
    if (revents & POLLOUT)
        if (auto f = flush(); !f) return f;
    if (!(revents & (POLLIN | POLLHUP | POLLERR))) return {};
    for (;;) {
        char buf[16384];
        const auto n = ::recv(fd_.get(), buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n <= 0) {
            close();
            return core::fail(core::errc::disconnected, "the manager closed the connection");
        }
        in_.append(buf, static_cast<std::size_t>(n));
        std::size_t start = 0;
        for (auto nl = in_.find('\n'); nl != std::string::npos; nl = in_.find('\n', start)) {
            lines.push_back(in_.substr(start, nl - start));
            start = nl + 1;
        }
        in_.erase(0, start);
        if (in_.size() > max_line) {
            close();
            return core::fail(core::errc::protocol_error, "a control reply line is too long");
        }
        if (static_cast<std::size_t>(n) < sizeof buf) break;
    }
    return {};
}

}  // namespace tunnel::ui
