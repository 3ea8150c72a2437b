#include "sftp/read_depth.hpp"

#include <algorithm>

namespace tunnel::sftp {

std::size_t read_depth(std::chrono::microseconds rtt, std::size_t chunk,
                       std::size_t max_inflight) noexcept {
    const auto us = static_cast<std::uint64_t>(std::max<std::int64_t>(rtt.count(), 0));
    // Bytes per second x seconds, without overflow for any sane RTT (<= 1 h).
    const std::uint64_t far =
        far_read_rate / 1'000'000 * std::min<std::uint64_t>(us, 3'600'000'000);
    const std::uint64_t want = std::max(near_read_bytes, far);
    const std::uint64_t c = std::max<std::size_t>(chunk, 1);
    const std::uint64_t n = (want + c - 1) / c;
    return static_cast<std::size_t>(
        std::clamp<std::uint64_t>(n, std::min<std::size_t>(2, max_inflight), max_inflight));
}

}  // namespace tunnel::sftp
