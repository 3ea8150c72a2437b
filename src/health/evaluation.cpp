#include "health/evaluation.hpp"

#include <cmath>

#include <fmt/format.h>

namespace tunnel::health {

std::string_view to_string(check_status s) noexcept {
    switch (s) {
        case check_status::ok:
            return "ok";
        case check_status::breach:
            return "breach";
        case check_status::unknown:
            return "unknown";
        case check_status::invalid:
            return "invalid";
    }
    return "unknown";
}

std::optional<clock_reading> read_clock(const host_sample& s, double local_before,
                                        double local_after) {
    if (!s.host_time || local_after < local_before) return std::nullopt;
    clock_reading c;
    double host = *s.host_time;
    c.uncertainty_seconds = (local_after - local_before) / 2;
    if (s.host_time_whole_seconds) {
        host += 0.5;  // the true time is somewhere in [t, t+1)
        c.uncertainty_seconds += 0.5;
    }
    c.skew_seconds = host - (local_before + local_after) / 2;
    return c;
}

namespace {

check_result unknown(std::string check, std::string why) {
    return {std::move(check), check_status::unknown, std::nullopt, std::nullopt, std::move(why)};
}

std::string gib(std::uint64_t bytes) {
    return fmt::format("{:.1f} GiB", static_cast<double>(bytes) / (1024.0 * 1024 * 1024));
}

}  // namespace

std::vector<check_result> evaluate(const host_sample& s, const std::optional<clock_reading>& clock,
                                   const thresholds& t) {
    std::vector<check_result> out;
    if (!s.problems.empty())
        out.push_back(
            {"probe", check_status::invalid, std::nullopt, std::nullopt,
             fmt::format("the host's answer was rejected: {}", fmt::join(s.problems, "; "))});

    if (s.load && s.cpus) {
        const double per_cpu = s.load->five / *s.cpus;
        const bool breach = per_cpu > t.load_per_cpu;
        out.push_back(
            {"load", breach ? check_status::breach : check_status::ok, per_cpu, t.load_per_cpu,
             fmt::format("5-min load {:.2f} on {} CPUs = {:.2f} per CPU ({} {})", s.load->five,
                         *s.cpus, per_cpu, breach ? "above" : "within", t.load_per_cpu)});
    } else {
        out.push_back(unknown("load", s.load ? "the host did not say how many CPUs it has"
                                             : "the host has no /proc/loadavg"));
    }

    if (s.memory) {
        const double avail = s.memory->available_percent();
        const bool breach = avail < t.memory_available_min;
        out.push_back({"memory", breach ? check_status::breach : check_status::ok, avail,
                       t.memory_available_min,
                       fmt::format("{:.1f}% available ({} of {}{}; min {}%)", avail,
                                   gib(s.memory->available_bytes), gib(s.memory->total_bytes),
                                   s.memory->available_estimated ? ", estimated" : "",
                                   t.memory_available_min)});
    } else {
        out.push_back(unknown("memory", "the host has no readable /proc/meminfo"));
    }

    if (s.mounts) {
        for (const auto& m : *s.mounts) {
            const double used = m.used_percent();
            const bool breach = used > t.disk_used_max;
            out.push_back({"disk " + m.mount, breach ? check_status::breach : check_status::ok,
                           used, t.disk_used_max,
                           fmt::format("{:.1f}% used ({} free of {}, {}; max {}%)", used,
                                       gib(m.available_bytes), gib(m.size_bytes),
                                       m.fstype.empty() ? m.source : m.fstype, t.disk_used_max)});
        }
    } else {
        out.push_back(unknown("disk", "df printed nothing"));
    }

    if (s.units) {
        const auto n = s.units->count;
        const bool breach = n > t.failed_units_max;
        std::string names = fmt::format("{}", fmt::join(s.units->names, ", "));
        if (n > s.units->names.size()) names += ", ...";
        out.push_back({"failed_units", breach ? check_status::breach : check_status::ok,
                       static_cast<double>(n), static_cast<double>(t.failed_units_max),
                       n == 0
                           ? "no failed units"
                           : fmt::format("{} failed: {} (max {})", n, names, t.failed_units_max)});
    } else {
        out.push_back(unknown("failed_units", s.units_unknown_why));
    }

    if (clock) {
        const double max = static_cast<double>(t.clock_skew_max.count()) / 1000.0;
        const double off = std::fabs(clock->skew_seconds);
        check_status st = check_status::ok;
        if (off - clock->uncertainty_seconds > max)
            st = check_status::breach;
        else if (off + clock->uncertainty_seconds > max)
            st = check_status::unknown;  // the round trip was too slow to tell
        out.push_back(
            {"clock_skew", st, clock->skew_seconds, max,
             fmt::format(
                 "host clock {} by {:.3f}s (+/- {:.3f}s; max {}s){}",
                 clock->skew_seconds >= 0 ? "ahead" : "behind", off, clock->uncertainty_seconds,
                 max, st == check_status::unknown ? ": the round trip was too slow to tell" : "")});
    } else {
        out.push_back(unknown("clock_skew", "the host's date printed no time"));
    }
    return out;
}

}  // namespace tunnel::health
