// What one run of the probe script (probe_script.hpp) says about a host,
// after probe_parser validated it. A fact the host did not report, or
// reported in a form that failed validation, is nullopt; the reason for a
// rejected one is in `problems`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tunnel::health {

struct load_average {
    double one = 0, five = 0, fifteen = 0;
};

struct memory_info {
    std::uint64_t total_bytes = 0;
    std::uint64_t available_bytes = 0;
    bool available_estimated = false;  // no MemAvailable (kernel < 3.14): MemFree+Buffers+Cached
    std::uint64_t swap_total_bytes = 0;
    std::uint64_t swap_free_bytes = 0;
    [[nodiscard]] double available_percent() const noexcept {
        return total_bytes == 0 ? 0.0
                                : 100.0 * static_cast<double>(available_bytes) /
                                      static_cast<double>(total_bytes);
    }
};

struct mount_usage {
    std::string mount;   // where it is mounted ("/", "/var")
    std::string fstype;  // from /proc/mounts ("ext4"); "" when not listed there
    std::string source;  // the device or filesystem name df shows
    std::uint64_t size_bytes = 0;
    std::uint64_t used_bytes = 0;
    std::uint64_t available_bytes = 0;
    // As df computes Capacity: used / (used + available), so blocks reserved
    // for root do not hide a full disk.
    [[nodiscard]] double used_percent() const noexcept {
        const auto usable = used_bytes + available_bytes;
        return usable == 0 ? 0.0
                           : 100.0 * static_cast<double>(used_bytes) / static_cast<double>(usable);
    }
};

struct failed_units {
    std::size_t count = 0;           // every failed unit
    std::vector<std::string> names;  // the first max_unit_lines of them
};

struct host_sample {
    std::optional<double> host_time;       // seconds since the epoch, per the host's clock
    bool host_time_whole_seconds = false;  // date had no %N: the time is only to the second
    std::optional<unsigned> cpus;
    std::optional<load_average> load;
    std::optional<memory_info> memory;
    std::optional<std::vector<mount_usage>> mounts;  // real filesystems only (see docs/health.md)
    bool systemd = false;                            // the host runs systemd
    std::optional<failed_units> units;               // nullopt: no systemd, or systemctl failed
    std::string units_unknown_why;                   // why `units` is nullopt ("no systemd", ...)
    std::vector<std::string> problems;  // what the host sent that was rejected, and why
};

}  // namespace tunnel::health
