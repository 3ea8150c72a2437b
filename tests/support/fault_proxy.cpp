#include "support/fault_proxy.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "support/delay_pump.hpp"

namespace tunnel::test {

struct fault_proxy::impl {
    int listen_fd = -1;
    uint16_t target_port = 0;
    std::atomic<bool> stopping{false};
    std::thread acceptor;
    std::mutex mutex;
    std::vector<std::thread> workers;
};

namespace {

void abort_with_rst(int fd) {
    linger l{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd);
}

// Copies what is readable on `from` to `to`; false when the link is over.
// `carried` counts the bytes read.
bool forward_once(int from, int to, bool discard, std::uint64_t& carried) {
    char buf[64 * 1024];
    ssize_t n = ::recv(from, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) {
        if (!discard) ::shutdown(to, SHUT_WR);  // a dropping link passes no FIN either
        return false;
    }
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    carried += static_cast<std::uint64_t>(n);
    if (discard) return true;
    const char* p = buf;
    while (n > 0) {
        ssize_t w = ::send(to, p, static_cast<std::size_t>(n), MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                pollfd pf{to, POLLOUT, 0};
                ::poll(&pf, 1, 50);
                continue;
            }
            return false;
        }
        p += w;
        n -= w;
    }
    return true;
}

}  // namespace

core::result<std::unique_ptr<fault_proxy>> fault_proxy::start(uint16_t target_port) {
    std::unique_ptr<fault_proxy> proxy(new fault_proxy());
    auto im = std::make_shared<impl>();
    im->target_port = target_port;
    im->listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(im->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(im->listen_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(im->listen_fd, 64) != 0) {
        ::close(im->listen_fd);
        return core::fail(core::errc::io_error,
                          std::string("fault_proxy: ") + std::strerror(errno));
    }
    socklen_t len = sizeof a;
    ::getsockname(im->listen_fd, reinterpret_cast<sockaddr*>(&a), &len);
    proxy->port_ = ntohs(a.sin_port);
    proxy->impl_ = im;
    fault_proxy* self = proxy.get();
    im->acceptor = std::thread([self, im] {
        for (;;) {
            pollfd pf{im->listen_fd, POLLIN, 0};
            if (::poll(&pf, 1, 50) <= 0) {
                if (im->stopping) return;
                continue;
            }
            int client = ::accept4(im->listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
            if (client < 0) continue;
            ++self->accepted_;
            int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            sockaddr_in t{};
            t.sin_family = AF_INET;
            t.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            t.sin_port = htons(im->target_port);
            if (::connect(server, reinterpret_cast<sockaddr*>(&t), sizeof t) != 0) {
                ::close(server);
                abort_with_rst(client);
                continue;
            }
            const int generation = self->reset_generation_;
            std::lock_guard lock(im->mutex);
            if (const auto us = self->delay_us_.load(); us > 0) {
                int on = 1;
                ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
                ::setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
                im->workers.emplace_back(
                    [im, client, server, delay = std::chrono::microseconds(us)] {
                        std::thread back([&] { delay_pump(server, client, delay, im->stopping); });
                        delay_pump(client, server, delay, im->stopping);
                        back.join();
                        ::close(client);
                        ::close(server);
                    });
                continue;
            }
            im->workers.emplace_back([self, im, client, server, generation] {
                bool open = true;
                bool client_open = true, server_open = true;
                std::uint64_t carried = 0;
                while (open && !im->stopping) {
                    if (self->reset_generation_ != generation || self->take_cut(carried)) {
                        abort_with_rst(client);
                        abort_with_rst(server);
                        return;
                    }
                    const fault_mode mode = self->mode_;
                    if (mode == fault_mode::stall) {
                        ::poll(nullptr, 0, 20);
                        continue;
                    }
                    pollfd fds[2] = {{client, static_cast<short>(client_open ? POLLIN : 0), 0},
                                     {server, static_cast<short>(server_open ? POLLIN : 0), 0}};
                    if (::poll(fds, 2, 20) <= 0) continue;
                    const bool discard = mode == fault_mode::drop;
                    if (const auto lag = self->lag_us_.load(); lag > 0 && !discard)
                        std::this_thread::sleep_for(std::chrono::microseconds(lag));
                    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR))
                        client_open = forward_once(client, server, discard, carried);
                    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR))
                        server_open = forward_once(server, client, discard, carried);
                    open = client_open || server_open;
                }
                ::close(client);
                ::close(server);
            });
        }
    });
    return proxy;
}

void fault_proxy::cut_after(std::uint64_t bytes, int times) noexcept {
    cut_bytes_ = bytes;
    cuts_left_ = times;
}

bool fault_proxy::take_cut(std::uint64_t carried) noexcept {
    if (carried < cut_bytes_) return false;
    int left = cuts_left_;
    while (left > 0)
        if (cuts_left_.compare_exchange_weak(left, left - 1)) {
            ++cuts_;
            return true;
        }
    return false;
}

fault_proxy::~fault_proxy() {
    if (!impl_) return;
    impl_->stopping = true;
    if (impl_->acceptor.joinable()) impl_->acceptor.join();
    ::close(impl_->listen_fd);
    std::lock_guard lock(impl_->mutex);
    for (auto& w : impl_->workers)
        if (w.joinable()) w.join();
}

}  // namespace tunnel::test
