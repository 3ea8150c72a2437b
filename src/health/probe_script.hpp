// The one POSIX sh script `tunnel health` runs on each host (one exec, one
// round trip). It prints one `KEY REST` line per fact; probe_parser reads it.
//
//   tunnel-health 1                          header: format version
//   time 1765040000.123456789                date +%s.%N, taken before anything is printed
//   cpus 4                                   getconf _NPROCESSORS_ONLN (or nproc)
//   loadavg 0.52 0.40 0.31 1/234 5678        /proc/loadavg
//   mem MemTotal: 16303460 kB                selected /proc/meminfo lines
//   df /dev/vda 264212084 57641852 42695336 58% /    df -P -k (no header), at most 256 lines
//   mnt /dev/vda / ext4 rw,relatime 0 0      /proc/mounts, at most 512 lines
//   systemd 0 | systemd none                 systemctl's exit status, or no systemd
//   unit foo.service loaded failed failed Foo   at most 100 failed units
//   units 3                                  how many failed units there are in all
//   end                                      the script got to the end
//
// Needs no root and nothing beyond POSIX sh, cat, head, df and date; a fact
// it cannot read is left out (reported as unknown), never guessed. df runs
// under `timeout 5` where that exists, so a dead NFS mount cannot hang it.
#pragma once

#include <string>

namespace tunnel::health {

inline constexpr int probe_format_version = 1;
inline constexpr unsigned max_df_lines = 256;
inline constexpr unsigned max_mount_lines = 512;
inline constexpr unsigned max_unit_lines = 100;

[[nodiscard]] const std::string& probe_script();

}  // namespace tunnel::health
