// Which of a tunnel's channels the relay wakes after the SSH packet loop:
// only those whose state changed, and those still opening. An open that the
// client refuses changes neither data, window nor open state, so a relay that
// woke only changed channels would notice the refusal only at its channel
// open timeout (10 s) instead of at once.
#include <chrono>

#include <gtest/gtest.h>

#include "support/net.hpp"
#include "support/relay_fixture.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

TEST(RelayChannelWake, ARefusedChannelOpenIsAnsweredAtOnce) {
    auto relay = relay_fixture::start({});
    ASSERT_TRUE(relay) << relay.error().message;
    auto dead = unused_port();  // nothing listens: ssh -R refuses the channel
    ASSERT_TRUE(dead);
    auto token = relay->mint("alice", "web");
    ASSERT_TRUE(token) << token.error().message;
    auto client = relay->publish("alice", *token, "web", *dead);
    ASSERT_TRUE(client) << client.error().message;
    const auto start = steady::now();
    auto r = http_request(relay->public_port(),
                          "GET /t/alice/web/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    const auto took = steady::now() - start;
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 502) << r->raw;
    EXPECT_LT(took, 5s) << "the refusal was noticed only after "
                        << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                        << " ms\n"
                        << relay->log();
}

}  // namespace
}  // namespace tunnel::test
