// How many SFTP read requests a bulk download keeps in flight for a link.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace tunnel::sftp {

// Bulk reads keep about max(near_read_bytes, RTT x far_read_rate) requested
// and unanswered, at least 2 and at most max_inflight requests. More than the
// link needs only costs the server: with 64 x 255 KiB asked for, sftp-server
// and sshd buffer up to a window (8 MiB here) of unsent replies, and they
// used 0.73 s of CPU per 256 MiB on loopback against 0.48 s with 8 in flight
// (docs/benchmarks.md); OpenSSH's own sftp keeps 2 MiB (64 x 32 KiB).
inline constexpr std::uint64_t near_read_bytes = 2u << 20;
inline constexpr std::uint64_t far_read_rate = 1u << 30;  // bytes per second
[[nodiscard]] std::size_t read_depth(std::chrono::microseconds rtt, std::size_t chunk,
                                     std::size_t max_inflight) noexcept;

}  // namespace tunnel::sftp
