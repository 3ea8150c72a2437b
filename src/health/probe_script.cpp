#include "health/probe_script.hpp"

#include <utility>

namespace tunnel::health {

namespace {

// The script is full of shell braces, so its numbers go in as @NAME@.
std::string fill(std::string text, int version, unsigned df, unsigned mounts, unsigned units) {
    const std::pair<std::string, std::string> values[] = {{"@VERSION@", std::to_string(version)},
                                                          {"@DF@", std::to_string(df)},
                                                          {"@MOUNTS@", std::to_string(mounts)},
                                                          {"@UNITS@", std::to_string(units)}};
    for (const auto& [name, value] : values)
        for (auto p = text.find(name); p != std::string::npos; p = text.find(name))
            text.replace(p, name.size(), value);
    return text;
}

}  // namespace

const std::string& probe_script() {
    static const std::string script = fill(
        R"SH(t=$(date +%s.%N 2>/dev/null)
echo "tunnel-health @VERSION@"
echo "time $t"
n=$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc 2>/dev/null); echo "cpus $n"
[ -r /proc/loadavg ] && echo "loadavg $(cat /proc/loadavg)"
[ -r /proc/meminfo ] && while read -r k v u; do case $k in
  MemTotal:|MemAvailable:|MemFree:|Buffers:|Cached:|SwapTotal:|SwapFree:) echo "mem $k $v $u";; esac; done </proc/meminfo
to=; command -v timeout >/dev/null 2>&1 && to="timeout 5"
$to df -P -k 2>/dev/null | head -n @DF@ | { read -r _; while IFS= read -r l; do echo "df $l"; done; }
[ -r /proc/mounts ] && head -n @MOUNTS@ /proc/mounts | while IFS= read -r l; do echo "mnt $l"; done
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  u=$(systemctl --failed --plain --no-legend --no-pager 2>/dev/null); echo "systemd $?"
  printf '%s\n' "$u" | head -n @UNITS@ | while IFS= read -r l; do [ -n "$l" ] && echo "unit $l"; done
  echo "units $(printf '%s\n' "$u" | grep -c .)"
else echo "systemd none"; fi
echo end
)SH",
        probe_format_version, max_df_lines + 1, max_mount_lines, max_unit_lines);
    return script;
}

}  // namespace tunnel::health
