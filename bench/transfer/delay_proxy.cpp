#include "delay_proxy.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <string>

namespace tunnel::bench {

namespace {

using clk = std::chrono::steady_clock;

struct timed_chunk {
    clk::time_point due;
    std::string data;
};

// Moves bytes from `in` to `out`, each chunk delayed by `delay`.
void pump(int in, int out, std::chrono::microseconds delay, const std::atomic<bool>& stop) {
    std::mutex m;
    std::condition_variable cv;
    std::deque<timed_chunk> q;
    std::size_t queued = 0;
    bool eof = false;
    std::thread writer([&] {
        for (;;) {
            timed_chunk c;
            {
                std::unique_lock lk(m);
                cv.wait(lk, [&] { return !q.empty() || eof; });
                if (q.empty()) break;
                c = std::move(q.front());
                q.pop_front();
                queued -= c.data.size();
            }
            cv.notify_all();
            std::this_thread::sleep_until(c.due);
            std::size_t off = 0;
            while (off < c.data.size()) {
                ssize_t n = ::send(out, c.data.data() + off, c.data.size() - off, MSG_NOSIGNAL);
                if (n <= 0) {
                    std::lock_guard lk(m);
                    eof = true;
                    q.clear();
                    return;
                }
                off += static_cast<std::size_t>(n);
            }
        }
        ::shutdown(out, SHUT_WR);
    });
    std::string buf(256 * 1024, '\0');
    while (!stop) {
        pollfd p{in, POLLIN, 0};
        if (::poll(&p, 1, 200) <= 0) continue;
        ssize_t n = ::recv(in, buf.data(), buf.size(), 0);
        if (n <= 0) break;
        std::unique_lock lk(m);
        cv.wait(lk, [&] { return queued < (64u << 20) || eof; });
        if (eof) break;
        q.push_back({clk::now() + delay, std::string(buf.data(), static_cast<std::size_t>(n))});
        queued += static_cast<std::size_t>(n);
        cv.notify_all();
    }
    {
        std::lock_guard lk(m);
        eof = true;
    }
    cv.notify_all();
    writer.join();
}

}  // namespace

delay_proxy::delay_proxy(std::uint16_t target_port, std::chrono::microseconds one_way_delay)
    : target_port_(target_port), delay_(one_way_delay) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listen_fd_, 16) != 0)
        throw std::runtime_error(std::string("delay proxy: ") + std::strerror(errno));
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
}

delay_proxy::~delay_proxy() {
    stop_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    acceptor_.join();
    for (auto& t : pumps_) t.join();
}

void delay_proxy::accept_loop() {
    while (!stop_) {
        pollfd p{listen_fd_, POLLIN, 0};
        if (::poll(&p, 1, 200) <= 0) continue;
        int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) continue;
        int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(target_port_);
        if (::connect(server, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            ::close(client);
            ::close(server);
            continue;
        }
        int on = 1;
        ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
        ::setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
        pumps_.emplace_back([this, client, server] {
            std::thread back([this, client, server] { pump(server, client, delay_, stop_); });
            pump(client, server, delay_, stop_);
            back.join();
            ::close(client);
            ::close(server);
        });
    }
}

}  // namespace tunnel::bench
