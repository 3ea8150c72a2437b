#include "support/tcp_servers.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <openssl/evp.h>

namespace tunnel::test {

class tcp_server_base {
  public:
    using handler = std::function<void(int fd, tcp_server_base& self)>;

    static core::result<std::shared_ptr<tcp_server_base>> start(const std::string& host,
                                                                handler h) {
        auto s = std::make_shared<tcp_server_base>();
        const bool v6 = host.find(':') != std::string::npos;
        s->fd_ = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        ::setsockopt(s->fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_storage ss{};
        socklen_t len = 0;
        if (v6) {
            auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
            a->sin6_family = AF_INET6;
            ::inet_pton(AF_INET6, host.c_str(), &a->sin6_addr);
            len = sizeof *a;
        } else {
            auto* a = reinterpret_cast<sockaddr_in*>(&ss);
            a->sin_family = AF_INET;
            ::inet_pton(AF_INET, host.c_str(), &a->sin_addr);
            len = sizeof *a;
        }
        if (::bind(s->fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
            ::listen(s->fd_, 128) != 0) {
            auto e = std::string(std::strerror(errno));
            ::close(s->fd_);
            s->fd_ = -1;
            return core::fail(core::errc::io_error, fmt::format("test server on {}: {}", host, e));
        }
        ::getsockname(s->fd_, reinterpret_cast<sockaddr*>(&ss), &len);
        s->port_ = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                            : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
        s->handler_ = std::move(h);
        std::weak_ptr<tcp_server_base> weak = s;
        s->acceptor_ = std::thread([raw = s.get()] { raw->accept_loop(); });
        return s;
    }

    ~tcp_server_base() { stop(); }

    void stop() {
        if (stopping_.exchange(true)) return;
        if (acceptor_.joinable()) acceptor_.join();
        if (fd_ >= 0) ::close(fd_);
        std::vector<std::thread> ws;
        {
            std::lock_guard lock(mutex_);
            for (int c : open_) ::shutdown(c, SHUT_RDWR);
            ws.swap(workers_);
        }
        for (auto& w : ws)
            if (w.joinable()) w.join();
    }

    uint16_t port() const noexcept { return port_; }
    bool stopping() const noexcept { return stopping_; }
    std::atomic<bool> paused{false};
    std::atomic<int> accepted{0};
    std::atomic<int> served{0};

  private:
    void accept_loop() {
        while (!stopping_) {
            pollfd pf{fd_, POLLIN, 0};
            if (::poll(&pf, 1, 50) <= 0) continue;
            int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (c < 0) continue;
            ++accepted;
            int one = 1;
            ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            std::lock_guard lock(mutex_);
            open_.push_back(c);
            workers_.emplace_back([this, c] {
                handler_(c, *this);
                {
                    std::lock_guard l(mutex_);
                    std::erase(open_, c);
                }
                ::close(c);
            });
        }
    }

    int fd_ = -1;
    uint16_t port_ = 0;
    handler handler_;
    std::atomic<bool> stopping_{false};
    std::thread acceptor_;
    std::mutex mutex_;
    std::vector<int> open_;
    std::vector<std::thread> workers_;
};

namespace {

bool send_all(int fd, const char* p, std::size_t n) {
    while (n > 0) {
        ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

void echo(int fd, tcp_server_base& self) {
    std::vector<char> buf(256 * 1024);
    while (!self.stopping()) {
        if (self.paused) {
            ::poll(nullptr, 0, 10);
            continue;
        }
        pollfd pf{fd, POLLIN, 0};
        if (::poll(&pf, 1, 20) <= 0) continue;
        ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
        if (n <= 0) break;
        if (!send_all(fd, buf.data(), static_cast<std::size_t>(n))) break;
    }
    ::shutdown(fd, SHUT_WR);
    // Wait for the client to close so the last bytes are not reset away.
    char sink[512];
    pollfd pf{fd, POLLIN, 0};
    while (!self.stopping() && ::poll(&pf, 1, 50) >= 0) {
        if (pf.revents == 0) continue;
        if (::recv(fd, sink, sizeof sink, 0) <= 0) break;
    }
}

}  // namespace

core::result<std::unique_ptr<echo_server>> echo_server::start(const std::string& host) {
    auto base = tcp_server_base::start(host, echo);
    if (!base) return tl::unexpected(base.error());
    std::unique_ptr<echo_server> s(new echo_server());
    s->base_ = *base;
    return s;
}
echo_server::~echo_server() {
    if (base_) base_->stop();
}
uint16_t echo_server::port() const noexcept {
    return base_->port();
}
void echo_server::set_paused(bool paused) noexcept {
    base_->paused = paused;
}
int echo_server::accepted() const noexcept {
    return base_->accepted;
}

core::result<std::unique_ptr<http_origin>> http_origin::start(std::string body,
                                                              const std::string& host) {
    auto base = tcp_server_base::start(host, [body](int fd, tcp_server_base& self) {
        std::string req;
        char buf[4096];
        while (req.find("\r\n\r\n") == std::string::npos && req.size() < 65536) {
            pollfd pf{fd, POLLIN, 0};
            if (::poll(&pf, 1, 5000) <= 0) return;
            ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) return;
            req.append(buf, static_cast<std::size_t>(n));
        }
        ++self.served;
        auto resp = fmt::format(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: "
            "close\r\n\r\n{}",
            body.size(), body);
        send_all(fd, resp.data(), resp.size());
        ::shutdown(fd, SHUT_WR);
        pollfd pf{fd, POLLIN, 0};
        if (::poll(&pf, 1, 2000) > 0) (void)::recv(fd, buf, sizeof buf, 0);
    });
    if (!base) return tl::unexpected(base.error());
    std::unique_ptr<http_origin> s(new http_origin());
    s->base_ = *base;
    return s;
}
http_origin::~http_origin() {
    if (base_) base_->stop();
}
uint16_t http_origin::port() const noexcept {
    return base_->port();
}
int http_origin::requests() const noexcept {
    return base_->served;
}

int connect_tcp(const std::string& host, uint16_t port, int timeout_ms) {
    const bool v6 = host.find(':') != std::string::npos;
    int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    (void)timeout_ms;  // loopback connects complete or fail at once
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (v6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        ::inet_pton(AF_INET6, host.c_str(), &a->sin6_addr);
        len = sizeof *a;
    } else {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        ::inet_pton(AF_INET, host.c_str(), &a->sin_addr);
        len = sizeof *a;
    }
    if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        ::close(fd);
        return -1;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

core::result<std::string> exchange(int fd, const std::string& data, int timeout_ms) {
    std::atomic<bool> send_ok{true};
    std::thread sender([&] {
        if (!send_all(fd, data.data(), data.size())) send_ok = false;
        ::shutdown(fd, SHUT_WR);
    });
    std::string got;
    std::vector<char> buf(256 * 1024);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    bool timed_out = false, failed = false;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            timed_out = true;
            break;
        }
        pollfd pf{fd, POLLIN, 0};
        int r = ::poll(&pf, 1, static_cast<int>(left.count()));
        if (r <= 0) continue;
        ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
        if (n == 0) break;
        if (n < 0) {
            failed = true;
            break;
        }
        got.append(buf.data(), static_cast<std::size_t>(n));
    }
    if (timed_out || failed) ::shutdown(fd, SHUT_RDWR);  // unblocks the sender
    sender.join();
    if (timed_out)
        return core::fail(core::errc::timeout,
                          fmt::format("exchange timed out after {} of {} bytes came back",
                                      got.size(), data.size()));
    if (failed || !send_ok)
        return core::fail(core::errc::io_error,
                          fmt::format("exchange failed after {} bytes", got.size()));
    return got;
}

std::string sha256_hex(const std::string& data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
    std::string out;
    for (unsigned i = 0; i < len; ++i) out += fmt::format("{:02x}", md[i]);
    return out;
}

std::string random_bytes(std::size_t n, uint64_t seed) {
    std::mt19937_64 gen(seed);
    std::string out(n, '\0');
    for (std::size_t i = 0; i + 8 <= n; i += 8) {
        uint64_t v = gen();
        std::memcpy(out.data() + i, &v, 8);
    }
    for (std::size_t i = n - n % 8; i < n; ++i) out[i] = static_cast<char>(gen());
    return out;
}

}  // namespace tunnel::test
