#include <chrono>

#include <gtest/gtest.h>

#include "sftp/client.hpp"

namespace tunnel::sftp {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t chunk = 261'120;  // OpenSSH's limits@openssh.com read length

TEST(SftpReadDepth, ANearServerGetsAbout2MiBOfReadsNotTheFullWindow) {
    // 2 MiB / 255 KiB, rounded up: 9 requests, not 64 (16 MiB).
    EXPECT_EQ(read_depth(0us, chunk, 64), 9u);
    EXPECT_EQ(read_depth(150us, chunk, 64), 9u);
    EXPECT_EQ(read_depth(1ms, chunk, 64), 9u);
}

TEST(SftpReadDepth, AFarServerGetsItsRoundTripAt1GiBPerSecondUpToMaxInflight) {
    // 10 ms x 1 GiB/s = 10.7 MB: 42 requests of 255 KiB.
    EXPECT_EQ(read_depth(10ms, chunk, 64), 42u);
    EXPECT_EQ(read_depth(50ms, chunk, 64), 64u);
    EXPECT_EQ(read_depth(24h, chunk, 64), 64u);  // no overflow
    EXPECT_EQ(read_depth(50ms, chunk, 16), 16u);
}

TEST(SftpReadDepth, SmallChunksAndSmallLimitsStayInRange) {
    EXPECT_EQ(read_depth(0us, 32'768, 64), 64u);  // 2 MiB of 32 KiB reads
    EXPECT_EQ(read_depth(0us, 32'768, 256), 64u);
    EXPECT_EQ(read_depth(0us, chunk, 1), 1u);      // --inflight 1 stays 1
    EXPECT_EQ(read_depth(0us, 4u << 20, 64), 2u);  // at least 2 for pipelining
    EXPECT_EQ(read_depth(-5ms, chunk, 64), 9u);
    EXPECT_EQ(read_depth(0us, 0, 64), 64u);  // a zero chunk is treated as 1 byte
}

}  // namespace
}  // namespace tunnel::sftp
