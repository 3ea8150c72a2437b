// An HTTP origin for tests that records every request it reads ("METHOD
// /path", and its Content-Length body) and answers 200 "ok"; requests to
// /hang are recorded but never answered. Runs on its own threads (one per
// connection); every method is thread-safe.
//
//   recording_origin origin;
//   ... publish 127.0.0.1:origin.port() ...
//   EXPECT_EQ(origin.count("POST /kept"), 1);
//   EXPECT_EQ(origin.body_of("POST /kept"), "hello");
#pragma once

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace tunnel::test {

class recording_origin {
  public:
    recording_origin() {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        (void)::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
        (void)::listen(fd_, 64);
        socklen_t len = sizeof a;
        (void)::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        acceptor_ = std::thread([this] { accept_loop(); });
    }
    ~recording_origin() {
        stop_ = true;
        acceptor_.join();
        for (auto& t : workers_) t.join();
        ::close(fd_);
    }
    recording_origin(const recording_origin&) = delete;
    recording_origin& operator=(const recording_origin&) = delete;

    [[nodiscard]] std::uint16_t port() const { return port_; }
    // "METHOD /path" of every request, in the order they were read.
    [[nodiscard]] std::vector<std::string> seen() const {
        std::lock_guard lock(mutex_);
        std::vector<std::string> out;
        out.reserve(seen_.size());
        for (const auto& [line, body] : seen_) out.push_back(line);
        return out;
    }
    [[nodiscard]] int count(const std::string& what) const {
        int n = 0;
        for (const auto& s : seen()) n += s == what ? 1 : 0;
        return n;
    }
    // The body of the first request `what` ("METHOD /path"), if one came.
    [[nodiscard]] std::optional<std::string> body_of(const std::string& what) const {
        std::lock_guard lock(mutex_);
        for (const auto& [line, body] : seen_)
            if (line == what) return body;
        return std::nullopt;
    }

  private:
    void accept_loop() {
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 100) <= 0) continue;
            const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (c < 0) continue;
            workers_.emplace_back([this, c] { serve(c); });
        }
    }
    void serve(int c) {
        std::string in;
        char buf[4096];
        while (!stop_) {
            const auto end = in.find("\r\n\r\n");
            if (end != std::string::npos) {
                const std::string head = in.substr(0, end);
                std::size_t body = 0;
                if (auto cl = head.find("Content-Length: "); cl != std::string::npos)
                    body = std::stoul(head.substr(cl + 16));
                if (in.size() >= end + 4 + body) {
                    const std::string line = head.substr(0, head.find(" HTTP/"));
                    {
                        std::lock_guard lock(mutex_);
                        seen_.emplace_back(line, in.substr(end + 4, body));
                    }
                    in.erase(0, end + 4 + body);
                    if (line.find(" /hang") != std::string::npos) continue;  // never answered
                    const std::string answer =
                        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: "
                        "text/plain\r\n\r\nok";
                    (void)::send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
                    continue;
                }
            }
            pollfd p{c, POLLIN, 0};
            if (::poll(&p, 1, 100) <= 0) continue;
            const ssize_t n = ::recv(c, buf, sizeof buf, 0);
            if (n <= 0) break;
            in.append(buf, static_cast<std::size_t>(n));
        }
        ::close(c);
    }

    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::thread acceptor_;
    std::vector<std::thread> workers_;
    mutable std::mutex mutex_;
    std::vector<std::pair<std::string, std::string>> seen_;  // "METHOD /path", body
};

}  // namespace tunnel::test
