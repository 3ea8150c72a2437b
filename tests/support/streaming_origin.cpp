#include "support/streaming_origin.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

namespace tunnel::test {

struct streaming_origin::state {
    int listen_fd = -1;
    std::uint16_t port = 0;
    std::atomic<bool> stopping{false};
    std::atomic<int> connections{0};
    std::atomic<int> open{0};
    std::atomic<int> requests{0};
    std::atomic<int> aborted{0};
    std::atomic<int> completed{0};
    std::atomic<int> bigs_aborted{0};
    std::atomic<int> bigs_completed{0};
    std::thread acceptor;
    std::mutex mutex;
    std::vector<std::thread> workers;
    std::vector<int> fds;
};

namespace {

bool send_all(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n <= 0) return false;
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

// Reads until `buf` holds `need` bytes past `from`, or a CRLFCRLF when need == 0.
bool read_more(int fd, std::string& buf) {
    char tmp[16384];
    ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf.append(tmp, static_cast<std::size_t>(n));
    return true;
}

std::string query_value(const std::string& target, const std::string& key,
                        const std::string& fallback) {
    auto q = target.find('?');
    if (q == std::string::npos) return fallback;
    std::string rest = target.substr(q + 1);
    std::size_t pos = 0;
    while (pos < rest.size()) {
        auto amp = rest.find('&', pos);
        std::string item =
            rest.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
        auto eq = item.find('=');
        if (eq != std::string::npos && item.substr(0, eq) == key) return item.substr(eq + 1);
        if (amp == std::string::npos) break;
        pos = amp + 1;
    }
    return fallback;
}

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string response(int status, std::string_view reason, std::string_view body,
                     std::string_view type = "text/plain") {
    return fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n{}", status,
                       reason, type, body.size(), body);
}

void serve(int fd, streaming_origin::state& st) {
    std::string buf;
    for (;;) {
        std::size_t end;
        while ((end = buf.find("\r\n\r\n")) == std::string::npos)
            if (!read_more(fd, buf)) return;
        std::string head = buf.substr(0, end + 4);
        buf.erase(0, end + 4);
        ++st.requests;
        auto sp1 = head.find(' ');
        auto sp2 = head.find(' ', sp1 + 1);
        std::string method = head.substr(0, sp1);
        std::string target = head.substr(sp1 + 1, sp2 - sp1 - 1);
        std::string path = target.substr(0, target.find('?'));
        std::string lh = lower(head);
        std::size_t content_length = 0;
        if (auto p = lh.find("\r\ncontent-length:"); p != std::string::npos)
            content_length = std::stoul(lh.substr(p + 17));
        const bool chunked = lh.find("transfer-encoding: chunked") != std::string::npos;
        std::string body;
        if (chunked) {
            for (;;) {
                std::size_t eol;
                while ((eol = buf.find("\r\n")) == std::string::npos)
                    if (!read_more(fd, buf)) return;
                std::size_t size = std::stoul(buf.substr(0, eol), nullptr, 16);
                while (buf.size() < eol + 2 + size + 2)
                    if (!read_more(fd, buf)) return;
                body += buf.substr(eol + 2, size);
                buf.erase(0, eol + 2 + size + 2);
                if (size == 0) break;
            }
        } else {
            while (buf.size() < content_length)
                if (!read_more(fd, buf)) return;
            body = buf.substr(0, content_length);
            buf.erase(0, content_length);
        }

        if (path == "/hello") {
            if (!send_all(fd, response(200, "OK", "hello\n"))) return;
        } else if (path == "/headers") {
            if (!send_all(fd, response(200, "OK", head))) return;
        } else if (path == "/echo" && method == "POST") {
            if (!send_all(fd, response(200, "OK", body, "application/octet-stream"))) return;
        } else if (path == "/slow") {
            std::this_thread::sleep_for(
                std::chrono::milliseconds(std::stoi(query_value(target, "ms", "1000"))));
            if (!send_all(fd, response(200, "OK", "slow\n"))) return;
        } else if (path == "/sw.js") {
            // A service worker script that asks for the whole origin as its scope.
            const std::string_view js = "self.addEventListener('fetch', () => {});\n";
            if (!send_all(fd, fmt::format("HTTP/1.1 200 OK\r\nContent-Type: text/javascript\r\n"
                                          "Service-Worker-Allowed: /\r\nContent-Length: {}\r\n"
                                          "\r\n{}",
                                          js.size(), js)))
                return;
        } else if (path == "/big") {
            const auto size = std::stoull(query_value(target, "size", "1048576"));
            bool ok = send_all(fd, fmt::format("HTTP/1.1 200 OK\r\nContent-Type: "
                                               "application/octet-stream\r\nContent-Length: "
                                               "{}\r\n\r\n",
                                               size));
            const std::string block(64 * 1024, 'b');
            for (unsigned long long sent = 0; ok && sent < size; sent += block.size())
                ok = send_all(fd, std::string_view(block).substr(
                                      0, static_cast<std::size_t>(std::min<unsigned long long>(
                                             block.size(), size - sent))));
            if (!ok) {
                ++st.bigs_aborted;
                return;
            }
            ++st.bigs_completed;
        } else if (path == "/drop") {
            return;
        } else if (path == "/bye") {
            // Answers as if keeping the connection, then closes it (an origin
            // whose keep-alive timeout just ran out).
            (void)send_all(fd, response(200, "OK", "bye\n"));
            return;
        } else if (path == "/hop") {
            // Hop-by-hop fields in a response (the relay must drop them).
            if (!send_all(fd,
                          "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n"
                          "Connection: X-Hop-Resp\r\nX-Hop-Resp: 1\r\nKeep-Alive: timeout=5\r\n"
                          "Proxy-Authenticate: Basic\r\nUpgrade: h2c\r\nX-Kept: yes\r\n\r\nhop\n"))
                return;
        } else if (path == "/upgrade") {
            // A protocol switch (as a WebSocket origin does), then raw echo.
            if (!send_all(fd,
                          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: "
                          "Upgrade\r\n\r\n"))
                return;
            if (!buf.empty() && !send_all(fd, buf)) return;
            char tmp[16384];
            for (;;) {
                ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
                if (n <= 0 || !send_all(fd, std::string_view(tmp, static_cast<std::size_t>(n))))
                    return;
            }
        } else if (path == "/stream") {
            const int n = std::stoi(query_value(target, "n", "5"));
            const int ms = std::stoi(query_value(target, "ms", "200"));
            if (!send_all(
                    fd,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: "
                    "chunked\r\nCache-Control: no-cache\r\n\r\n")) {
                ++st.aborted;
                return;
            }
            bool ok = true;
            for (int i = 0; i < n && ok; ++i) {
                if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
                std::string line = fmt::format("{{\"i\":{}}}\n", i);
                ok = send_all(fd, fmt::format("{:x}\r\n{}\r\n", line.size(), line));
            }
            if (ok) ok = send_all(fd, "0\r\n\r\n");
            if (!ok) {
                ++st.aborted;
                return;
            }
            ++st.completed;
        } else {
            if (!send_all(fd, response(404, "Not Found", "not found\n"))) return;
        }
    }
}

}  // namespace

bool wait_until_impl(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (pred()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return pred();
}

core::result<std::unique_ptr<streaming_origin>> streaming_origin::start() {
    auto st = std::make_shared<state>();
    st->listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(st->listen_fd, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
        ::listen(st->listen_fd, 128) != 0) {
        ::close(st->listen_fd);
        return core::fail(core::errc::io_error,
                          fmt::format("streaming origin: {}", std::strerror(errno)));
    }
    ::getsockname(st->listen_fd, reinterpret_cast<sockaddr*>(&a), &len);
    st->port = ntohs(a.sin_port);
    st->acceptor = std::thread([raw = st.get()] {
        while (!raw->stopping) {
            pollfd p{raw->listen_fd, POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            int fd = ::accept4(raw->listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) continue;
            ++raw->connections;
            ++raw->open;
            std::lock_guard lock(raw->mutex);
            raw->fds.push_back(fd);
            raw->workers.emplace_back([raw, fd] {
                serve(fd, *raw);
                ::shutdown(fd, SHUT_RDWR);
                --raw->open;
            });
        }
    });
    std::unique_ptr<streaming_origin> o(new streaming_origin());
    o->state_ = std::move(st);
    return o;
}

streaming_origin::~streaming_origin() {
    state_->stopping = true;
    if (state_->acceptor.joinable()) state_->acceptor.join();
    ::close(state_->listen_fd);
    std::vector<std::thread> ws;
    {
        std::lock_guard lock(state_->mutex);
        for (int fd : state_->fds) ::shutdown(fd, SHUT_RDWR);
        ws.swap(state_->workers);
    }
    for (auto& w : ws)
        if (w.joinable()) w.join();
    for (int fd : state_->fds) ::close(fd);
}

std::uint16_t streaming_origin::port() const noexcept {
    return state_->port;
}
int streaming_origin::connections() const noexcept {
    return state_->connections;
}
int streaming_origin::open_connections() const noexcept {
    return state_->open;
}
int streaming_origin::requests() const noexcept {
    return state_->requests;
}
int streaming_origin::streams_aborted() const noexcept {
    return state_->aborted;
}
int streaming_origin::streams_completed() const noexcept {
    return state_->completed;
}
int streaming_origin::bigs_aborted() const noexcept {
    return state_->bigs_aborted;
}
int streaming_origin::bigs_completed() const noexcept {
    return state_->bigs_completed;
}

}  // namespace tunnel::test
