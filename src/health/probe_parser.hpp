// Reads the probe script's output (probe_script.hpp) strictly: the output
// is the host's word, so every size is bounded and every number validated.
// A line that fails validation drops that fact and adds a problem naming it;
// it never crashes, throws or yields a made-up value.
#pragma once

#include <cstddef>
#include <string_view>

#include "core/error.hpp"
#include "health/host_sample.hpp"

namespace tunnel::health {

inline constexpr std::size_t max_probe_output = 256 * 1024;
inline constexpr std::size_t max_probe_line = 4096;

// Fails (protocol_error) only when the output is not the probe's at all:
// too large, or no `tunnel-health 1` header first. Everything else is a
// sample, with problems for what was rejected (no `end` line: the output
// was cut short).
[[nodiscard]] core::result<host_sample> parse_probe(std::string_view output);

// Filesystems without storage of their own (tmpfs, proc, cgroup, squashfs
// images...): not reported as disks.
[[nodiscard]] bool pseudo_filesystem(std::string_view fstype) noexcept;

}  // namespace tunnel::health
