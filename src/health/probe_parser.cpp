#include "health/probe_parser.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "health/probe_script.hpp"

namespace tunnel::health {

namespace {

constexpr std::uint64_t max_kib = std::uint64_t{1} << 50;  // 1 EiB in KiB: no overflow in bytes
constexpr double max_load = 1e6;
constexpr unsigned max_cpus = 65536;
constexpr double min_time = 946684800.0;   // 2000-01-01
constexpr double max_time = 7258118400.0;  // 2200-01-01
constexpr std::size_t max_name = 256;
constexpr std::size_t header_search_lines = 64;

// Untrusted text made safe to print: control bytes become '?', cut at max_name.
std::string printable(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, max_name))
        out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
    if (s.size() > max_name) out += "...";
    return out;
}

std::vector<std::string_view> words(std::string_view s) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
        std::size_t j = i;
        while (j < s.size() && s[j] != ' ' && s[j] != '\t') ++j;
        if (j > i) out.push_back(s.substr(i, j - i));
        i = j;
    }
    return out;
}

bool all_digits(std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::optional<std::uint64_t> whole(std::string_view s, std::uint64_t max) {
    if (!all_digits(s) || s.size() > 19) return std::nullopt;
    std::uint64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size() || v > max) return std::nullopt;
    return v;
}

// "12", "0.52": digits with an optional fraction; nothing else (no sign,
// exponent, inf or nan).
std::optional<double> decimal(std::string_view s, double max) {
    auto dot = s.find('.');
    auto int_part = s.substr(0, dot);
    if (!all_digits(int_part) || int_part.size() > 12) return std::nullopt;
    if (dot != std::string_view::npos && !all_digits(s.substr(dot + 1))) return std::nullopt;
    if (s.size() > 40) return std::nullopt;
    double v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size() || !std::isfinite(v) || v < 0 || v > max)
        return std::nullopt;
    return v;
}

// /proc/mounts writes space, tab, newline and backslash in paths as \ooo.
std::string unescape_octal(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 3 < s.size()) {
            auto o = s.substr(i + 1, 3);
            if (std::all_of(o.begin(), o.end(), [](char c) { return c >= '0' && c <= '7'; })) {
                out += static_cast<char>(((o[0] - '0') << 6) | ((o[1] - '0') << 3) | (o[2] - '0'));
                i += 3;
                continue;
            }
        }
        out += s[i];
    }
    return out;
}

bool valid_unit_name(std::string_view s) {
    if (s.empty() || s.size() > max_name || s.find('.') == std::string_view::npos) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == ':' || c == '_' || c == '.' || c == '@' || c == '-' || c == '\\';
    });
}

struct df_row {
    std::string source, mount;
    std::uint64_t size_kib = 0, used_kib = 0, avail_kib = 0;
};

// "SOURCE SIZE USED AVAIL CAP% MOUNT": SOURCE and MOUNT may hold spaces, so
// the numbers are found as the first run of three numbers and a percentage.
std::optional<df_row> parse_df(std::string_view rest, std::string& why) {
    auto w = words(rest);
    for (std::size_t i = 1; i + 4 < w.size(); ++i) {
        auto size = whole(w[i], max_kib), used = whole(w[i + 1], max_kib),
             avail = whole(w[i + 2], max_kib);
        const auto cap = w[i + 3];
        if (!size || !used || !avail || cap.size() < 2 || cap.back() != '%') continue;
        df_row r;
        for (std::size_t k = 0; k < i; ++k) r.source += (k ? " " : "") + std::string(w[k]);
        for (std::size_t k = i + 4; k < w.size(); ++k)
            r.mount += (k > i + 4 ? " " : "") + std::string(w[k]);
        r.size_kib = *size, r.used_kib = *used, r.avail_kib = *avail;
        if (r.mount.empty() || r.mount.front() != '/') break;
        if (r.used_kib > r.size_kib || r.avail_kib > r.size_kib) {
            why = fmt::format("used {} KiB or available {} KiB is more than the size {} KiB",
                              r.used_kib, r.avail_kib, r.size_kib);
            return std::nullopt;
        }
        return r;
    }
    why = "not 'SOURCE SIZE USED AVAILABLE CAPACITY% /MOUNT' with whole numbers";
    return std::nullopt;
}

}  // namespace

bool pseudo_filesystem(std::string_view t) noexcept {
    static constexpr std::array<std::string_view, 27> names{
        "tmpfs",      "devtmpfs",  "proc",     "sysfs",      "devpts", "cgroup",      "cgroup2",
        "mqueue",     "debugfs",   "tracefs",  "securityfs", "pstore", "bpf",         "autofs",
        "hugetlbfs",  "configfs",  "fusectl",  "ramfs",      "nsfs",   "binfmt_misc", "efivarfs",
        "rpc_pipefs", "selinuxfs", "squashfs", "devfs",      "udev",   "none"};
    return std::find(names.begin(), names.end(), t) != names.end();
}

core::result<host_sample> parse_probe(std::string_view output) {
    if (output.size() > max_probe_output)
        return core::fail(
            core::errc::protocol_error,
            fmt::format("the health probe printed more than {} KiB; refusing to read it",
                        max_probe_output / 1024));
    // Lines, and the header among the first few (a shell startup file may print first).
    std::vector<std::string_view> lines;
    while (!output.empty()) {
        auto nl = output.find('\n');
        lines.push_back(output.substr(0, nl));
        output.remove_prefix(nl == std::string_view::npos ? output.size() : nl + 1);
    }
    const std::string header = fmt::format("tunnel-health {}", probe_format_version);
    std::size_t first = 0;
    while (first < lines.size() && first < header_search_lines && lines[first] != header) ++first;
    if (first == lines.size() || first == header_search_lines)
        return core::fail(
            core::errc::protocol_error,
            fmt::format("the health probe's output has no '{}' line{}: not a POSIX sh "
                        "on the host, or a shell startup file printing a lot",
                        header,
                        lines.empty() ? " (it printed nothing)"
                                      : ", it began: " + printable(lines.front())));

    host_sample s;
    auto problem = [&](std::string what) {
        if (s.problems.size() < 20) s.problems.push_back(std::move(what));
    };
    std::map<std::string, int, std::less<>> seen;  // facts given once
    std::map<std::string, std::uint64_t, std::less<>> mem;
    std::vector<df_row> df;
    std::map<std::string, std::string>
        fstype;  // mount -> type (the last mount wins, as the kernel's)
    std::size_t df_lines = 0, mnt_lines = 0;
    std::optional<std::string> systemd_status;
    std::optional<std::uint64_t> units_total;
    std::vector<std::string> unit_names;
    bool units_bad = false, ended = false;

    for (std::size_t n = first + 1; n < lines.size(); ++n) {
        auto line = lines[n];
        if (ended) {
            problem("output after the 'end' line");
            break;
        }
        if (line.size() > max_probe_line) {
            problem(fmt::format("line {} is longer than {} bytes; ignored", n + 1, max_probe_line));
            continue;
        }
        auto sp = line.find(' ');
        auto key = line.substr(0, sp);
        auto rest = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
        if (key == "time" || key == "cpus" || key == "loadavg" || key == "systemd" ||
            key == "units") {
            if (++seen[std::string(key)] > 1) {
                problem(fmt::format("'{}' given more than once", key));
                continue;
            }
        }
        if (key == "time") {
            auto dot = rest.find('.');
            auto secs = whole(rest.substr(0, dot), static_cast<std::uint64_t>(max_time));
            if (rest.empty()) continue;  // no date: unknown
            if (!secs || *secs < min_time) {
                problem(fmt::format("time '{}': not seconds since 1970 between 2000 and 2200",
                                    printable(rest)));
                continue;
            }
            auto frac = dot == std::string_view::npos ? std::string_view{} : rest.substr(dot + 1);
            double t = static_cast<double>(*secs);
            if (all_digits(frac) && frac.size() <= 9) {
                double f = 0, scale = 0.1;
                for (char c : frac) f += (c - '0') * scale, scale /= 10;
                t += f;
            } else {
                s.host_time_whole_seconds = true;  // date without %N prints "N" or "%N"
            }
            s.host_time = t;
        } else if (key == "cpus") {
            if (rest.empty()) continue;
            auto c = whole(rest, max_cpus);
            if (!c || *c == 0)
                problem(fmt::format("cpus '{}': not a whole number from 1 to {}", printable(rest),
                                    max_cpus));
            else
                s.cpus = static_cast<unsigned>(*c);
        } else if (key == "loadavg") {
            auto w = words(rest);
            std::optional<double> l1, l5, l15;
            if (w.size() >= 3)
                l1 = decimal(w[0], max_load), l5 = decimal(w[1], max_load),
                l15 = decimal(w[2], max_load);
            if (!l1 || !l5 || !l15)
                problem(fmt::format("loadavg '{}': not three load averages from 0 to {}",
                                    printable(rest), max_load));
            else
                s.load = load_average{*l1, *l5, *l15};
        } else if (key == "mem") {
            auto w = words(rest);
            if (w.size() != 3 || w[0].size() < 2 || w[0].back() != ':' || w[2] != "kB") {
                problem(fmt::format("mem '{}': not 'Name: N kB'", printable(rest)));
                continue;
            }
            auto name = w[0].substr(0, w[0].size() - 1);
            auto v = whole(w[1], max_kib);
            if (!v) {
                problem(fmt::format("mem {}: '{}' is not a whole number of kB", printable(name),
                                    printable(w[1])));
                mem.erase(std::string(name));
                seen["mem " + std::string(name)] = 2;
                continue;
            }
            if (++seen["mem " + std::string(name)] > 1) {
                problem(fmt::format("mem {} given more than once", printable(name)));
                mem.erase(std::string(name));
                continue;
            }
            mem[std::string(name)] = *v;
        } else if (key == "df") {
            if (++df_lines > max_df_lines) {
                if (df_lines == max_df_lines + 1)
                    problem(fmt::format("more than {} df lines; the rest ignored", max_df_lines));
                continue;
            }
            std::string why;
            if (auto r = parse_df(rest, why))
                df.push_back(std::move(*r));
            else
                problem(fmt::format("df '{}': {}", printable(rest), why));
        } else if (key == "mnt") {
            if (++mnt_lines > max_mount_lines) continue;
            auto w = words(rest);
            if (w.size() >= 3) fstype[unescape_octal(w[1])] = std::string(w[2]);
        } else if (key == "systemd") {
            systemd_status = std::string(rest);
        } else if (key == "unit") {
            if (unit_names.size() >= max_unit_lines) {
                units_bad = true;
                problem(fmt::format("more than {} failed unit lines", max_unit_lines));
                continue;
            }
            auto w = words(rest);
            if (w.empty() || !valid_unit_name(w[0])) {
                units_bad = true;
                problem(fmt::format("unit '{}': not a systemd unit name", printable(rest)));
                continue;
            }
            unit_names.emplace_back(w[0]);
        } else if (key == "units") {
            units_total = whole(rest, 1'000'000);
            if (!units_total) {
                units_bad = true;
                problem(fmt::format("units '{}': not a count", printable(rest)));
            }
        } else if (key == "end" && rest.empty()) {
            ended = true;
        }
        // Other keys: ignored (a newer probe, or noise from the host).
    }
    if (!ended) problem("the output ended before its 'end' line (cut short or killed)");
    // A fact given twice is believed neither time.
    auto repeated = [&](const char* k) { return seen.count(k) && seen.find(k)->second > 1; };
    if (repeated("time")) s.host_time.reset();
    if (repeated("cpus")) s.cpus.reset();
    if (repeated("loadavg")) s.load.reset();
    if (repeated("units")) units_bad = true;
    if (repeated("systemd")) systemd_status = "repeated";

    // Memory.
    auto get = [&](const char* k) -> std::optional<std::uint64_t> {
        auto it = mem.find(k);
        if (it == mem.end()) return std::nullopt;
        return it->second;
    };
    if (auto total = get("MemTotal"); total && *total > 0) {
        memory_info m;
        m.total_bytes = *total * 1024;
        if (auto a = get("MemAvailable")) {
            m.available_bytes = *a * 1024;
        } else if (auto f = get("MemFree"); f && get("Buffers") && get("Cached")) {
            m.available_bytes = (*f + *get("Buffers") + *get("Cached")) * 1024;
            m.available_estimated = true;
        }
        m.swap_total_bytes = get("SwapTotal").value_or(0) * 1024;
        m.swap_free_bytes = get("SwapFree").value_or(0) * 1024;
        if (m.available_bytes > m.total_bytes)
            problem(fmt::format("mem: available {} kB is more than MemTotal {} kB",
                                m.available_bytes / 1024, *total));
        else if (m.swap_free_bytes > m.swap_total_bytes)
            problem(fmt::format("mem: SwapFree {} kB is more than SwapTotal {} kB",
                                m.swap_free_bytes / 1024, m.swap_total_bytes / 1024));
        else if (!get("MemAvailable") && !m.available_estimated)
            problem("mem: neither MemAvailable nor MemFree, Buffers and Cached");
        else
            s.memory = m;
    } else if (!mem.empty()) {
        problem("mem: no MemTotal, or MemTotal is 0");
    }

    // Disks: real filesystems only, each filesystem once (bind mounts repeat it).
    if (df_lines > 0) {
        std::vector<mount_usage> out;
        for (auto& r : df) {
            mount_usage m;
            auto t = fstype.find(r.mount);
            m.fstype = t == fstype.end() ? "" : t->second;
            if (pseudo_filesystem(m.fstype.empty() ? r.source : m.fstype) || r.size_kib == 0)
                continue;
            const bool repeat = std::any_of(out.begin(), out.end(), [&](const mount_usage& o) {
                return o.source == r.source && o.size_bytes == r.size_kib * 1024 &&
                       o.used_bytes == r.used_kib * 1024;
            });
            if (repeat) continue;
            m.mount = printable(r.mount);
            m.source = printable(r.source);
            m.size_bytes = r.size_kib * 1024;
            m.used_bytes = r.used_kib * 1024;
            m.available_bytes = r.avail_kib * 1024;
            out.push_back(std::move(m));
        }
        s.mounts = std::move(out);
    }

    // Failed units.
    if (!systemd_status || *systemd_status == "none") {
        s.units_unknown_why = systemd_status ? "no systemd on the host" : "not reported";
    } else {
        s.systemd = true;
        if (*systemd_status != "0") {
            s.units_unknown_why =
                fmt::format("systemctl --failed exited with {}", printable(*systemd_status));
        } else if (units_bad || !units_total) {
            s.units_unknown_why = "the failed-unit list was unreadable";
        } else if (*units_total < unit_names.size() ||
                   (*units_total > unit_names.size() && unit_names.size() < max_unit_lines)) {
            problem(fmt::format("units: {} failed units counted but {} listed", *units_total,
                                unit_names.size()));
            s.units_unknown_why = "the failed-unit count did not match the list";
        } else {
            s.units = failed_units{static_cast<std::size_t>(*units_total), std::move(unit_names)};
        }
    }
    return s;
}

}  // namespace tunnel::health
