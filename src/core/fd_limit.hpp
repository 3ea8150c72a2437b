// The process's open-descriptor limit (RLIMIT_NOFILE). A server that accepts
// connections raises its soft limit to the hard limit at start, so the
// default of 1024 (what a shell or a systemd unit hands it) does not cap it
// long before the machine would, and sizes its connection caps below it.
#pragma once

#include <cstdint>

#include "core/error.hpp"

namespace tunnel::core {

struct fd_limit {
    std::uint64_t soft = 0;
    std::uint64_t hard = 0;  // RLIM_INFINITY shows as UINT64_MAX
};

// The current limits.
[[nodiscard]] result<fd_limit> nofile_limit();

// Raises the soft limit to the hard limit (capped at `ceiling`, since an
// unlimited hard limit cannot be a soft one on Linux beyond
// /proc/sys/fs/nr_open); returns the limits now in force.
[[nodiscard]] result<fd_limit> raise_nofile_limit(std::uint64_t ceiling = 1u << 20);

}  // namespace tunnel::core
