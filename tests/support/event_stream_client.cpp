#include "support/event_stream_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace tunnel::test {

namespace {
using steady = std::chrono::steady_clock;

std::chrono::milliseconds left(steady::time_point deadline) {
    const auto d = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
    return d.count() > 0 ? d : std::chrono::milliseconds(0);
}
}  // namespace

core::result<event_stream_client> event_stream_client::open(std::uint16_t port,
                                                            const std::string& request,
                                                            int receive_buffer) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return core::fail(core::errc::io_error, std::strerror(errno));
    event_stream_client c(fd);
    if (receive_buffer > 0)
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        return core::fail(core::errc::io_error,
                          fmt::format("connect 127.0.0.1:{}: {}", port, std::strerror(errno)));
    std::size_t sent = 0;
    while (sent < request.size()) {
        const auto n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) return core::fail(core::errc::io_error, std::strerror(errno));
        sent += static_cast<std::size_t>(n);
    }
    return c;
}

event_stream_client::event_stream_client(event_stream_client&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      closed_(other.closed_),
      head_(std::move(other.head_)),
      buffer_(std::move(other.buffer_)),
      body_total_(other.body_total_) {}

event_stream_client::~event_stream_client() {
    if (fd_ >= 0) ::close(fd_);
}

bool event_stream_client::read_some(std::chrono::milliseconds timeout) {
    if (closed_) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
    char chunk[65536];
    const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
        closed_ = true;
        return false;
    }
    std::string_view data(chunk, static_cast<std::size_t>(n));
    if (head_.empty() || head_.find("\r\n\r\n") == std::string::npos) {
        head_.append(data);
        const auto end = head_.find("\r\n\r\n");
        if (end != std::string::npos) {
            buffer_ = head_.substr(end + 4);
            body_total_ += buffer_.size();
            head_.resize(end + 4);
        }
    } else {
        buffer_.append(data);
        body_total_ += data.size();
    }
    return true;
}

int event_stream_client::status(std::chrono::milliseconds timeout) {
    const auto deadline = steady::now() + timeout;
    while (head_.find("\r\n\r\n") == std::string::npos)
        if (!read_some(left(deadline))) break;
    if (head_.size() < 12 || head_.compare(0, 5, "HTTP/") != 0) return 0;
    return std::atoi(head_.c_str() + 9);
}

std::optional<nlohmann::json> event_stream_client::wait_for_event(
    const std::string& name, const std::function<bool(const nlohmann::json&)>& match,
    std::chrono::milliseconds timeout) {
    const auto deadline = steady::now() + timeout;
    if (status(timeout) != 200) return std::nullopt;
    for (;;) {
        // Whole events end with a blank line.
        for (auto end = buffer_.find("\n\n"); end != std::string::npos;
             end = buffer_.find("\n\n")) {
            const std::string event = buffer_.substr(0, end);
            buffer_.erase(0, end + 2);
            std::string event_name, data;
            std::size_t pos = 0;
            while (pos < event.size()) {
                auto eol = event.find('\n', pos);
                if (eol == std::string::npos) eol = event.size();
                const std::string line = event.substr(pos, eol - pos);
                if (line.rfind("event: ", 0) == 0) event_name = line.substr(7);
                if (line.rfind("data: ", 0) == 0)
                    data += (data.empty() ? "" : "\n") + line.substr(6);
                pos = eol + 1;
            }
            if (event_name != name) continue;
            auto j = nlohmann::json::parse(data, nullptr, false);
            if (!j.is_discarded() && match(j)) return j;
        }
        if (steady::now() >= deadline || !read_some(left(deadline))) return std::nullopt;
    }
}

bool event_stream_client::wait_for_bytes(std::size_t total, std::chrono::milliseconds timeout) {
    const auto deadline = steady::now() + timeout;
    while (body_total_ < total) {
        buffer_.clear();
        if (!read_some(left(deadline))) return false;
    }
    buffer_.clear();
    return true;
}

bool event_stream_client::closed_by_server(std::chrono::milliseconds timeout) {
    const auto deadline = steady::now() + timeout;
    while (!closed_ && steady::now() < deadline) {
        read_some(left(deadline));
        buffer_.clear();
    }
    return closed_;
}

}  // namespace tunnel::test
