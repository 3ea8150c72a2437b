#include "health/health_report.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace tunnel::health {

std::string_view to_string(host_health h) noexcept {
    switch (h) {
        case host_health::ok:
            return "ok";
        case host_health::breach:
            return "breach";
        case host_health::invalid:
            return "invalid";
        case host_health::unreachable:
            return "unreachable";
    }
    return "invalid";
}

host_health host_report::health() const noexcept {
    if (!reached) return host_health::unreachable;
    if (!up) return host_health::invalid;
    bool breach = false;
    for (const auto& c : checks) {
        if (c.status == check_status::invalid) return host_health::invalid;
        breach = breach || c.status == check_status::breach;
    }
    return breach ? host_health::breach : host_health::ok;
}

int exit_code(const std::vector<host_report>& hosts) noexcept {
    int code = 0;
    for (const auto& h : hosts) {
        const auto s = h.health();
        if (s == host_health::breach || s == host_health::invalid) code |= exit_breach;
        if (s == host_health::unreachable) code |= exit_unreachable;
    }
    return code;
}

namespace {

nlohmann::json optional_number(const std::optional<double>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

nlohmann::json host_json(const host_report& h) {
    nlohmann::json j{{"host", h.name},
                     {"destination", h.destination},
                     {"status", std::string(to_string(h.health()))},
                     {"up", h.up},
                     {"error", h.error.empty() ? nlohmann::json(nullptr) : nlohmann::json(h.error)},
                     {"round_trip_ms", h.round_trip.count()}};
    const auto* s = h.sample ? &*h.sample : nullptr;
    j["load"] = nullptr;
    if (s && s->load)
        j["load"] = {{"1m", s->load->one},
                     {"5m", s->load->five},
                     {"15m", s->load->fifteen},
                     {"cpus", s->cpus ? nlohmann::json(*s->cpus) : nlohmann::json(nullptr)}};
    j["memory"] = nullptr;
    if (s && s->memory)
        j["memory"] = {{"total_bytes", s->memory->total_bytes},
                       {"available_bytes", s->memory->available_bytes},
                       {"available_percent", s->memory->available_percent()},
                       {"available_estimated", s->memory->available_estimated},
                       {"swap_total_bytes", s->memory->swap_total_bytes},
                       {"swap_free_bytes", s->memory->swap_free_bytes}};
    j["disks"] = nullptr;
    if (s && s->mounts) {
        j["disks"] = nlohmann::json::array();
        for (const auto& m : *s->mounts)
            j["disks"].push_back({{"mount", m.mount},
                                  {"fstype", m.fstype},
                                  {"source", m.source},
                                  {"size_bytes", m.size_bytes},
                                  {"used_bytes", m.used_bytes},
                                  {"available_bytes", m.available_bytes},
                                  {"used_percent", m.used_percent()}});
    }
    j["failed_units"] = {{"known", s && s->units.has_value()},
                         {"systemd", s && s->systemd},
                         {"count", nullptr},
                         {"units", nlohmann::json::array()}};
    if (s && s->units) {
        j["failed_units"]["count"] = s->units->count;
        j["failed_units"]["units"] = s->units->names;
    } else if (s) {
        j["failed_units"]["why_unknown"] = s->units_unknown_why;
    }
    j["clock"] = nullptr;
    if (h.clock)
        j["clock"] = {{"skew_seconds", h.clock->skew_seconds},
                      {"uncertainty_seconds", h.clock->uncertainty_seconds}};
    nlohmann::json checks = nlohmann::json::array();
    for (const auto& c : h.checks)
        checks.push_back({{"check", c.check},
                          {"status", std::string(to_string(c.status))},
                          {"value", optional_number(c.value)},
                          {"limit", optional_number(c.limit)},
                          {"message", c.message}});
    j["checks"] = std::move(checks);
    return j;
}

}  // namespace

nlohmann::json to_json(const std::vector<host_report>& hosts, const thresholds& t) {
    nlohmann::json list = nlohmann::json::array();
    std::size_t counts[4] = {};
    for (const auto& h : hosts) {
        list.push_back(host_json(h));
        ++counts[static_cast<int>(h.health())];
    }
    return {{"hosts", std::move(list)},
            {"thresholds",
             {{"load_per_cpu", t.load_per_cpu},
              {"memory_available_min", t.memory_available_min},
              {"disk_used_max", t.disk_used_max},
              {"failed_units_max", t.failed_units_max},
              {"clock_skew_max_seconds", static_cast<double>(t.clock_skew_max.count()) / 1000.0}}},
            {"summary",
             {{"total", hosts.size()},
              {"ok", counts[0]},
              {"breach", counts[1]},
              {"invalid", counts[2]},
              {"unreachable", counts[3]}}}};
}

std::string format_text(const std::vector<host_report>& hosts) {
    std::string out;
    std::size_t counts[4] = {};
    for (const auto& h : hosts) {
        const auto st = h.health();
        ++counts[static_cast<int>(st)];
        const char* host_mark = st == host_health::ok        ? "OK"
                                : st == host_health::breach  ? "BREACH"
                                : st == host_health::invalid ? "INVALID"
                                                             : "UNREACHABLE";
        out += fmt::format("{}  {}{}\n", h.name, host_mark,
                           h.destination.empty() ? "" : "  " + h.destination);
        if (!h.error.empty()) out += fmt::format("  {}\n", h.error);
        std::size_t width = 5;
        for (const auto& c : h.checks) width = std::max(width, c.check.size());
        for (const auto& c : h.checks) {
            std::string mark = c.status == check_status::ok        ? "OK"
                               : c.status == check_status::breach  ? "BREACH"
                               : c.status == check_status::invalid ? "INVALID"
                                                                   : "?";
            out += fmt::format("  {:<7} {:<{}}  {}\n", mark, c.check, width, c.message);
        }
    }
    out += fmt::format("{} host(s): {} ok, {} breach, {} invalid, {} unreachable\n", hosts.size(),
                       counts[0], counts[1], counts[2], counts[3]);
    return out;
}

namespace {

// A label value in the Prometheus text format: \ " and newline escaped.
std::string label(std::string_view v) {
    std::string out;
    for (char c : v) {
        if (c == '\\' || c == '"')
            out += '\\', out += c;
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

struct family {
    const char* name;
    const char* help;
    std::string lines;
};

}  // namespace

std::string prometheus_text(const std::vector<host_report>& hosts, std::uint64_t rounds) {
    family up{"tunnel_host_up", "1 when the host answered the health probe, else 0", {}};
    family load1{"tunnel_host_load1", "1-minute load average", {}};
    family load5{"tunnel_host_load5", "5-minute load average", {}};
    family load15{"tunnel_host_load15", "15-minute load average", {}};
    family cpus{"tunnel_host_cpus", "Online CPUs", {}};
    family mem_total{"tunnel_host_memory_total_bytes", "MemTotal", {}};
    family mem_avail{"tunnel_host_memory_available_bytes", "MemAvailable", {}};
    family swap_total{"tunnel_host_swap_total_bytes", "SwapTotal", {}};
    family swap_free{"tunnel_host_swap_free_bytes", "SwapFree", {}};
    family disk_size{"tunnel_host_disk_size_bytes", "Filesystem size", {}};
    family disk_used{"tunnel_host_disk_used_bytes", "Filesystem space used", {}};
    family disk_avail{
        "tunnel_host_disk_available_bytes", "Filesystem space available to unprivileged users", {}};
    family units{"tunnel_host_failed_units", "Failed systemd units (absent without systemd)", {}};
    family skew{"tunnel_host_clock_skew_seconds", "Host clock minus local clock", {}};
    family breaches{"tunnel_host_breaches", "Checks over their threshold", {}};
    auto add = [](family& f, std::string labels, double v) {
        f.lines += fmt::format("{}{{{}}} {}\n", f.name, labels, v);
    };
    for (const auto& h : hosts) {
        const std::string hl = fmt::format("host=\"{}\"", label(h.name));
        add(up, hl, h.up ? 1 : 0);
        if (!h.up || !h.sample) continue;
        const auto& s = *h.sample;
        if (s.load) {
            add(load1, hl, s.load->one);
            add(load5, hl, s.load->five);
            add(load15, hl, s.load->fifteen);
        }
        if (s.cpus) add(cpus, hl, *s.cpus);
        if (s.memory) {
            add(mem_total, hl, static_cast<double>(s.memory->total_bytes));
            add(mem_avail, hl, static_cast<double>(s.memory->available_bytes));
            add(swap_total, hl, static_cast<double>(s.memory->swap_total_bytes));
            add(swap_free, hl, static_cast<double>(s.memory->swap_free_bytes));
        }
        if (s.mounts)
            for (const auto& m : *s.mounts) {
                const auto ml = fmt::format("{},mount=\"{}\"", hl, label(m.mount));
                add(disk_size, ml, static_cast<double>(m.size_bytes));
                add(disk_used, ml, static_cast<double>(m.used_bytes));
                add(disk_avail, ml, static_cast<double>(m.available_bytes));
            }
        if (s.units) add(units, hl, static_cast<double>(s.units->count));
        if (h.clock) add(skew, hl, h.clock->skew_seconds);
        add(breaches, hl,
            static_cast<double>(std::count_if(h.checks.begin(), h.checks.end(), [](const auto& c) {
                return c.status == check_status::breach;
            })));
    }
    std::string out;
    for (const family* f :
         {&up, &load1, &load5, &load15, &cpus, &mem_total, &mem_avail, &swap_total, &swap_free,
          &disk_size, &disk_used, &disk_avail, &units, &skew, &breaches}) {
        out +=
            fmt::format("# HELP {} {}\n# TYPE {} gauge\n{}", f->name, f->help, f->name, f->lines);
    }
    out += fmt::format(
        "# HELP tunnel_health_rounds_total Probe rounds finished\n# TYPE "
        "tunnel_health_rounds_total counter\ntunnel_health_rounds_total {}\n",
        rounds);
    return out;
}

}  // namespace tunnel::health
