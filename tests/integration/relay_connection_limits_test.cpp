// Public connection caps and the accept loop (issue 10, finding 6) against a
// real `tunnel relay`: connections over limits.max_connections_per_ip,
// max_unauthenticated or max_connections are closed at once and counted;
// the relay raises its own soft RLIMIT_NOFILE; and when it does run out of
// descriptors (EMFILE, forced with a low hard limit) its accept loop backs
// off instead of spinning, says so once, and serves again when descriptors
// come back.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>

#include <fmt/format.h>

#include "support/net.hpp"
#include "support/relay_fixture.hpp"
#include "support/streaming_origin.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// True when the peer closed `fd` within `timeout` (nothing is ever sent to us).
bool closed_within(int fd, std::chrono::milliseconds timeout) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
    char c;
    return ::recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

// GET /nowhere from `source`: the relay's 404 proves it serves that caller.
int status_from(const std::string& source, std::uint16_t port) {
    int fd = connect_from(source, port);
    if (fd < 0) return -1;
    const std::string req = "GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    (void)::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    std::string got;
    char buf[4096];
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 3000) <= 0) break;
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        got.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return got.rfind("HTTP/1.1 ", 0) == 0 ? std::stoi(got.substr(9, 3)) : 0;
}

struct held {
    std::vector<int> fds;
    ~held() {
        for (int fd : fds) ::close(fd);
    }
    // Opens `n` idle connections from `source`; returns how many the relay
    // closed within 300 ms (it closes those over a cap before reading anything).
    int open(const std::string& source, std::uint16_t port, int n) {
        std::vector<int> mine;
        for (int i = 0; i < n; ++i) {
            int fd = connect_from(source, port);
            if (fd >= 0) mine.push_back(fd);
        }
        int closed = 0;
        const auto deadline = steady::now() + 300ms;
        for (int fd : mine) {
            auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
            if (closed_within(fd, std::max(left, 1ms))) {
                ++closed;
                ::close(fd);
            } else {
                fds.push_back(fd);
            }
        }
        return closed;
    }
};

std::string metrics_line(const relay_fixture& relay, const std::string& series) {
    std::istringstream in(relay.admin_get("/metrics"));
    for (std::string line; std::getline(in, line);)
        if (line.rfind(series + " ", 0) == 0) return line.substr(series.size() + 1);
    return "";
}

double cpu_seconds(int pid) {
    std::ifstream in(fmt::format("/proc/{}/stat", pid));
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::istringstream fields(text.substr(text.rfind(')') + 2));
    std::vector<std::string> f{std::istream_iterator<std::string>(fields), {}};
    // utime and stime are fields 14 and 15 of /proc/PID/stat (12, 13 after the name).
    return (std::stod(f.at(11)) + std::stod(f.at(12))) /
           static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::string limits_line(int pid) {
    std::ifstream in(fmt::format("/proc/{}/limits", pid));
    for (std::string line; std::getline(in, line);)
        if (line.rfind("Max open files", 0) == 0) return line;
    return "";
}

relay_fixture start(const std::string& limits, std::vector<std::string> prefix = {}) {
    relay_options o;
    o.extra_yaml = "limits:\n" + limits;
    o.command_prefix = std::move(prefix);
    auto r = relay_fixture::start(o);
    if (!r) throw std::runtime_error(r.error().message);  // fails the test
    return std::move(*r);
}

TEST(RelayConnectionLimits, ConnectionsOverTheCapOfOneAddressAreClosedAtOnce) {
    auto relay = start("  max_connections_per_ip: 20\n  header_read_timeout: 30s\n");
    held h;
    EXPECT_EQ(h.open("127.0.0.5", relay.public_port(), 30), 10);
    EXPECT_EQ(h.fds.size(), 20u);
    // Another address is served as before.
    EXPECT_EQ(status_from("127.0.0.6", relay.public_port()), 404);
    EXPECT_EQ(
        metrics_line(relay, "relay_connections_refused_total{cap=\"max_connections_per_ip\"}"),
        "10");
    // The other address's connection is counted until the relay has closed
    // it after its answer: the 20 held ones remain.
    EXPECT_TRUE(streaming_origin::wait_until(
        [&] { return metrics_line(relay, "relay_public_connections") == "20"; }, 3s))
        << metrics_line(relay, "relay_public_connections");
    // A place freed is a place to take again.
    ::close(h.fds.back());
    h.fds.pop_back();
    EXPECT_TRUE(streaming_origin::wait_until(
        [&] { return metrics_line(relay, "relay_public_connections") == "19"; }, 3s));
    EXPECT_EQ(status_from("127.0.0.5", relay.public_port()), 404);
}

TEST(RelayConnectionLimits, UnauthenticatedConnectionsHaveTheirOwnBudget) {
    auto relay =
        start("  max_unauthenticated: 10\n  max_connections: 100\n  header_read_timeout: 30s\n");
    // Ten keep-alive callers that sent a complete request are not counted.
    std::vector<int> served;
    for (int i = 0; i < 10; ++i) {
        int fd = connect_from(fmt::format("127.0.2.{}", i + 1), relay.public_port());
        ASSERT_GE(fd, 0);
        const std::string req = "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n";
        ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), (ssize_t)req.size());
        served.push_back(fd);
    }
    std::this_thread::sleep_for(300ms);
    held h;
    // Ten idle sockets from ten addresses fill the budget; the next is closed at once.
    for (int i = 0; i < 10; ++i)
        EXPECT_EQ(h.open(fmt::format("127.0.3.{}", i + 1), relay.public_port(), 1), 0) << i;
    EXPECT_EQ(h.open("127.0.3.200", relay.public_port(), 1), 1);
    EXPECT_EQ(metrics_line(relay, "relay_connections_refused_total{cap=\"max_unauthenticated\"}"),
              "1");
    // The ten served connections are still open and usable.
    for (int fd : served) {
        pollfd p{fd, POLLIN, 0};
        ASSERT_EQ(::poll(&p, 1, 1000), 1);
        char buf[4096];
        EXPECT_GT(::recv(fd, buf, sizeof buf, 0), 0);  // the 404
        ::close(fd);
    }
}

TEST(RelayConnectionLimits, MaxConnectionsCapsEverything) {
    auto relay =
        start("  max_connections: 15\n  max_unauthenticated: 15\n  header_read_timeout: 30s\n");
    held h;
    int refused = 0;
    for (int i = 0; i < 20; ++i)
        refused += h.open(fmt::format("127.0.4.{}", i + 1), relay.public_port(), 1);
    EXPECT_EQ(refused, 5);
    EXPECT_EQ(h.fds.size(), 15u);
    EXPECT_EQ(metrics_line(relay, "relay_connections_refused_total{cap=\"max_connections\"}"), "5");
}

TEST(RelayConnectionLimits, TheRelayRaisesItsSoftDescriptorLimit) {
    auto relay = start("  header_read_timeout: 5s\n", {"prlimit", "--nofile=256:4096", "--"});
    EXPECT_NE(limits_line(relay.pid()).find("4096                 4096"), std::string::npos)
        << limits_line(relay.pid());
}

TEST(RelayConnectionLimits, OutOfDescriptorsTheAcceptLoopBacksOffAndRecovers) {
    // 100 descriptors in all, but caps far above: accepts fail with EMFILE.
    auto relay = start(
        "  max_connections: 5000\n  max_connections_per_ip: 5000\n  max_unauthenticated: 5000\n"
        "  header_read_timeout: 60s\n",
        {"prlimit", "--nofile=100:100", "--"});
    EXPECT_NE(relay.log().find("does not fit under the open-file limit"), std::string::npos)
        << relay.log();
    held h;
    (void)h.open("127.0.0.7", relay.public_port(), 150);  // the kernel queues what is not accepted
    std::this_thread::sleep_for(500ms);
    const double cpu0 = cpu_seconds(relay.pid());
    std::this_thread::sleep_for(3s);
    const double cpu = cpu_seconds(relay.pid()) - cpu0;
    // A spinning accept loop burns a whole core; backing off to 1 s costs nothing.
    EXPECT_LT(cpu, 0.3) << "relay CPU over 3 s of EMFILE";
    const std::string log = relay.log();
    std::size_t warnings = 0;
    for (auto at = log.find("accept on the public listener failed"); at != std::string::npos;
         at = log.find("accept on the public listener failed", at + 1))
        ++warnings;
    EXPECT_EQ(warnings, 1u) << log.substr(0, 4000);
    // Descriptors come back: the listener accepts again and says so.
    for (int fd : h.fds) ::close(fd);
    h.fds.clear();
    EXPECT_TRUE(streaming_origin::wait_until(
        [&] { return status_from("127.0.0.8", relay.public_port()) == 404; }, 10s));
    EXPECT_NE(relay.log().find("accepts again after"), std::string::npos);
    // (The admin listener had no descriptors either while they were out.)
    EXPECT_NE(metrics_line(relay, "relay_accept_errors_total{error=\"emfile\"}"), "");
}

}  // namespace
}  // namespace tunnel::test
