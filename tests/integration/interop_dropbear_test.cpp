// The tunnel CLI against dropbear, a second SSH server whose flow control is
// unlike OpenSSH's: a 24 KiB receive window (or smaller, -W) that it gives back
// whole once our data has arrived, and nothing else sent meanwhile. A client
// that misses the WINDOW_ADJUST (libssh processes it inside a read, with no
// callback) sleeps until its deadline while dropbear waits for data: tracker
// issue 14, `tunnel cp` of 8 MiB hanging for 60 s. Each transfer here has a
// 20 s limit; they take well under a second when nothing is lost.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "forward_test_support.hpp"
#include "support/dropbear_fixture.hpp"
#include "support/net.hpp"
#include "support/process.hpp"
#include "support/tcp_servers.hpp"
#include "support/tunnel_cli.hpp"
#include "transfer/copier.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

constexpr std::size_t transfer_size = 8u << 20;
constexpr std::chrono::milliseconds transfer_limit = 20s;

std::string hash(const std::string& path) {
    auto h = transfer::sha256_file(path);
    return h ? *h : "error: " + h.error().message;
}

cli_options limited() {
    cli_options options;
    options.timeout = transfer_limit;
    return options;
}

std::vector<std::string> cp_args(const dropbear_fixture& dropbear, const std::string& from,
                                 const std::string& to) {
    std::vector<std::string> args{"cp"};
    const auto flags = dropbear.client_flags("-P");
    args.insert(args.end(), flags.begin(), flags.end());
    args.push_back(from);
    args.push_back(to);
    return args;
}

std::string remote(const std::string& path) {
    return "root@127.0.0.1:" + path;
}

long long ms_since(steady::time_point start) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start).count();
}

// Uploads `local` to dropbear and downloads it again, `runs` times; each
// transfer must finish within transfer_limit with every byte intact.
void round_trips(const dropbear_fixture& dropbear, const temp_dir& dir, const std::string& local,
                 int runs) {
    const auto want = hash(local);
    for (int run = 1; run <= runs; ++run) {
        SCOPED_TRACE("run " + std::to_string(run));
        const auto far = dir.file("remote-" + std::to_string(run));
        const auto back = dir.file("back-" + std::to_string(run));

        auto start = steady::now();
        const auto up = run_tunnel(cp_args(dropbear, local, remote(far)), limited());
        const auto up_ms = ms_since(start);
        ASSERT_TRUE(up.ok()) << "upload: " << up.describe() << "\ndropbear log:\n"
                             << dropbear.log();
        EXPECT_EQ(hash(far), want) << "upload changed the content";

        start = steady::now();
        const auto down = run_tunnel(cp_args(dropbear, remote(far), back), limited());
        const auto down_ms = ms_since(start);
        ASSERT_TRUE(down.ok()) << "download: " << down.describe() << "\ndropbear log:\n"
                               << dropbear.log();
        EXPECT_EQ(hash(back), want) << "download changed the content";
        std::printf("run %d: 8 MiB up in %lld ms, down in %lld ms\n", run, up_ms, down_ms);
    }
}

class InteropDropbear : public ::testing::Test {
  protected:
    void SetUp() override {
        auto d = temp_dir::create("tunnel-interop-dropbear");
        ASSERT_TRUE(d) << d.error().message;
        dir_.emplace(std::move(*d));
        ASSERT_TRUE(write_text_file(local(), random_bytes(transfer_size, 14)));
    }
    [[nodiscard]] std::string local() const { return dir_->file("local"); }

    // Starts dropbear_; skips the test where dropbear cannot run (see
    // dropbear_fixture::start). Callers return when dropbear_ stays empty.
    void start_dropbear(dropbear_options options = {}) {
        auto started = dropbear_fixture::start(options);
        if (!started && started.error().code == core::errc::not_found)
            GTEST_SKIP() << started.error().message;
        ASSERT_TRUE(started) << started.error().message;
        dropbear_.emplace(std::move(*started));
    }

    std::optional<temp_dir> dir_;
    std::optional<dropbear_fixture> dropbear_;
};

TEST_F(InteropDropbear, CopyOf8MiBUpAndDownFinishesEveryTime) {
    start_dropbear();
    if (!dropbear_) return;
    const auto& dropbear = *dropbear_;
    round_trips(dropbear, *dir_, local(), 3);
}

TEST_F(InteropDropbear, CopyOf8MiBFinishesWithAnEightKiBWindow) {
    dropbear_options options;
    options.receive_window = 8192;
    start_dropbear(options);
    if (!dropbear_) return;
    const auto& dropbear = *dropbear_;
    round_trips(dropbear, *dir_, local(), 1);
}

// Accepts connections on 127.0.0.1 and reads each to EOF; keeps what each
// one carried. Connections are served one after another.
class sink_server {
  public:
    sink_server() {
        const auto l = listen_loopback();
        fd_ = l.fd;
        if (fd_ < 0) return;
        port_ = l.port;
        thread_ = std::thread([this] { serve(); });
    }
    ~sink_server() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
        if (fd_ >= 0) ::close(fd_);
    }
    sink_server(const sink_server&) = delete;
    sink_server& operator=(const sink_server&) = delete;

    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
    // What each finished connection carried, in order.
    [[nodiscard]] std::vector<std::string> received() const {
        std::lock_guard lock(mutex_);
        return received_;
    }

  private:
    void serve() {
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            const int conn = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (conn < 0) continue;
            std::string data;
            char buf[65536];
            const auto deadline = steady::now() + transfer_limit;
            while (!stop_ && steady::now() < deadline) {
                pollfd c{conn, POLLIN, 0};
                if (::poll(&c, 1, 50) <= 0) continue;
                const ssize_t n = ::read(conn, buf, sizeof buf);
                if (n <= 0) break;
                data.append(buf, static_cast<std::size_t>(n));
            }
            ::close(conn);
            std::lock_guard lock(mutex_);
            received_.push_back(std::move(data));
        }
    }

    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::thread thread_;
    mutable std::mutex mutex_;
    std::vector<std::string> received_;
};

// Sends all of `data` on fd, blocking, each send bounded by SO_SNDTIMEO.
bool send_all(int fd, const std::string& data, std::chrono::milliseconds limit) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(limit.count() / 1000);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    const auto deadline = steady::now() + limit;
    std::size_t off = 0;
    while (off < data.size() && steady::now() < deadline) {
        const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n <= 0) return false;
        off += static_cast<std::size_t>(n);
    }
    return off == data.size();
}

TEST_F(InteropDropbear, LocalForwardPushes8MiBOneWayToASink) {
    start_dropbear();
    if (!dropbear_) return;
    const auto& dropbear = *dropbear_;
    sink_server sink;
    ASSERT_NE(sink.port(), 0) << "cannot listen for the sink";
    auto lp = unused_port();
    ASSERT_TRUE(lp) << lp.error().message;
    auto forward = fwd::start_forward(dropbear.client_flags("-p"),
                                      {"-L", fmt::format("{}:127.0.0.1:{}", *lp, sink.port())});
    ASSERT_TRUE(forward) << forward.error().message;
    ASSERT_TRUE(wait_for_port(*lp, 10s)) << forward->err() << "\ndropbear log:\n" << dropbear.log();

    const auto data = random_bytes(transfer_size, 16);
    const auto start = steady::now();
    const int fd = connect_tcp("127.0.0.1", *lp);
    ASSERT_GE(fd, 0);
    const bool sent = send_all(fd, data, transfer_limit);
    ::shutdown(fd, SHUT_WR);
    if (!sent) {
        ::close(fd);
        FAIL() << "the forward stopped taking data within 20 s\n"
               << forward->err() << "\ndropbear log:\n"
               << dropbear.log();
    }
    // Only one direction carries data: no incoming packet wakes the pump.
    const bool arrived = fwd::eventually(
        [&] {
            for (const auto& got : sink.received())
                if (got.size() == data.size()) return true;
            return false;
        },
        transfer_limit);
    ::close(fd);
    ASSERT_TRUE(arrived) << "8 MiB did not reach the sink within 20 s\n"
                         << forward->err() << "\ndropbear log:\n"
                         << dropbear.log();
    const auto received = sink.received();
    const auto whole = std::find_if(received.begin(), received.end(), [&](const std::string& got) {
        return got.size() == data.size();
    });
    ASSERT_NE(whole, received.end());
    EXPECT_EQ(sha256_hex(*whole), sha256_hex(data));
    std::printf("8 MiB through -L in %lld ms\n", ms_since(start));
}

}  // namespace
}  // namespace tunnel::test
