// The fault proxy's delay mode (support/fault_proxy.hpp set_delay), which
// bench/transfer uses for its 10 ms round trip: a connection accepted after
// set_delay(D) takes at least 2*D for a round trip through an echo server,
// one accepted before it (or after set_delay(0)) does not, and bulk bytes
// arrive intact.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "support/fault_proxy.hpp"
#include "support/tcp_servers.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

// One 5-byte round trip on an open connection, in milliseconds (-1 on failure).
double round_trip_ms(int fd) {
    const auto start = clk::now();
    if (::send(fd, "ping\n", 5, MSG_NOSIGNAL) != 5) return -1;
    char buf[5];
    std::size_t got = 0;
    while (got < sizeof buf) {
        const auto n = ::recv(fd, buf + got, sizeof buf - got, 0);
        if (n <= 0) return -1;
        got += static_cast<std::size_t>(n);
    }
    return std::chrono::duration<double, std::milli>(clk::now() - start).count();
}

TEST(FaultProxyDelay, LaterConnectionsTakeTwiceTheDelayPerRoundTrip) {
    auto echo = echo_server::start();
    ASSERT_TRUE(echo);
    auto proxy = fault_proxy::start((*echo)->port());
    ASSERT_TRUE(proxy);
    const int before = connect_tcp("127.0.0.1", (*proxy)->port());
    ASSERT_GE(before, 0);
    ASSERT_GE(round_trip_ms(before), 0);  // accepted and pumping before the delay is set

    (*proxy)->set_delay(25ms);
    const int delayed = connect_tcp("127.0.0.1", (*proxy)->port());
    ASSERT_GE(delayed, 0);
    for (int i = 0; i < 3; ++i) {
        const double ms = round_trip_ms(delayed);
        EXPECT_GE(ms, 50.0) << "round trip " << i;
        EXPECT_LT(ms, 2000.0) << "round trip " << i;
    }
    // The connection accepted before set_delay keeps passing at once.
    EXPECT_LT(round_trip_ms(before), 45.0);

    // Bulk bytes through the delayed link arrive intact.
    const std::string data = random_bytes(3 << 20, 7);
    auto back = exchange(delayed, data, 20000);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(sha256_hex(*back), sha256_hex(data));

    (*proxy)->set_delay(0us);
    const int after = connect_tcp("127.0.0.1", (*proxy)->port());
    ASSERT_GE(after, 0);
    EXPECT_LT(round_trip_ms(after), 45.0);
    ::close(before);
    ::close(delayed);
    ::close(after);
}

}  // namespace
}  // namespace tunnel::test
