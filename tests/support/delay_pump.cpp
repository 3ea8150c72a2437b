#include "support/delay_pump.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

namespace tunnel::test {

namespace {

using clk = std::chrono::steady_clock;

struct timed_chunk {
    clk::time_point due;
    std::string data;
};

constexpr std::size_t max_backlog = std::size_t{64} << 20;

}  // namespace

void delay_pump(int in, int out, std::chrono::microseconds delay, const std::atomic<bool>& stop) {
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
        cv.wait(lk, [&] { return queued < max_backlog || eof; });
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

}  // namespace tunnel::test
