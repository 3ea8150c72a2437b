#include "forward/forward_stats.hpp"
#include <functional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace tunnel::forward {

namespace {

// Prometheus label values escape \, " and newline.
std::string label(std::string_view v) {
    std::string out;
    for (char c : v) {
        if (c == '\\' || c == '"') out.push_back('\\');
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out.push_back(c);
    }
    return out;
}

std::string kind_name(forward_kind k) {
    switch (k) {
        case forward_kind::local:
            return "local";
        case forward_kind::remote:
            return "remote";
        case forward_kind::dynamic:
            return "dynamic";
    }
    return "?";
}

}  // namespace

std::string_view to_string(forward_state state) noexcept {
    switch (state) {
        case forward_state::starting:
            return "starting";
        case forward_state::up:
            return "up";
        case forward_state::down:
            return "down";
        case forward_state::failed:
            return "failed";
    }
    return "?";
}

bool supervisor_stats::healthy() const noexcept {
    if (!connected) return false;
    for (const auto& f : forwards)
        if (f.state != forward_state::up) return false;
    return true;
}

std::string render_metrics(const supervisor_stats& s) {
    std::string out;
    auto header = [&](const char* name, const char* type, const char* help) {
        out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    };
    header("tunnel_forward_connected", "gauge", "1 while the SSH session is up");
    out += fmt::format("tunnel_forward_connected{{destination=\"{}\"}} {}\n", label(s.destination),
                       s.connected ? 1 : 0);
    header("tunnel_forward_connects_total", "counter", "SSH sessions established");
    out += fmt::format("tunnel_forward_connects_total {}\n", s.connects);
    header("tunnel_forward_reconnects_total", "counter", "SSH sessions established after a loss");
    out += fmt::format("tunnel_forward_reconnects_total {}\n", s.reconnects);
    header("tunnel_forward_connect_failures_total", "counter", "failed connection attempts");
    out += fmt::format("tunnel_forward_connect_failures_total {}\n", s.connect_failures);
    header("tunnel_forward_disconnects_total", "counter", "established sessions lost");
    out += fmt::format("tunnel_forward_disconnects_total {}\n", s.disconnects);

    struct metric {
        const char* name;
        const char* type;
        const char* help;
        std::function<std::string(const forward_stats&)> value;
    };
    const metric per_forward[] = {
        {"tunnel_forward_up", "gauge", "1 when the forward is up",
         [](const forward_stats& f) {
             return std::string(f.state == forward_state::up ? "1" : "0");
         }},
        {"tunnel_forward_bytes_out_total", "counter", "bytes carried towards the target",
         [](const forward_stats& f) { return std::to_string(f.bytes_out); }},
        {"tunnel_forward_bytes_in_total", "counter", "bytes carried back from the target",
         [](const forward_stats& f) { return std::to_string(f.bytes_in); }},
        {"tunnel_forward_connections_total", "counter", "connections accepted",
         [](const forward_stats& f) { return std::to_string(f.connections); }},
        {"tunnel_forward_connection_failures_total", "counter",
         "connections that could not be carried",
         [](const forward_stats& f) { return std::to_string(f.failures); }},
        {"tunnel_forward_open_channels", "gauge", "channels open now",
         [](const forward_stats& f) { return std::to_string(f.open_channels); }},
    };
    for (const auto& m : per_forward) {
        header(m.name, m.type, m.help);
        for (const auto& f : s.forwards)
            out += fmt::format("{}{{forward=\"{}\",kind=\"{}\"}} {}\n", m.name, label(f.spec.text),
                               kind_name(f.spec.kind), m.value(f));
    }
    header("tunnel_forward_state", "gauge", "1 for the current state of each forward");
    for (const auto& f : s.forwards)
        for (auto st : {forward_state::starting, forward_state::up, forward_state::down,
                        forward_state::failed})
            out += fmt::format("tunnel_forward_state{{forward=\"{}\",state=\"{}\"}} {}\n",
                               label(f.spec.text), to_string(st), f.state == st ? 1 : 0);
    return out;
}

std::string render_status_json(const supervisor_stats& s) {
    nlohmann::json j;
    j["destination"] = s.destination;
    j["connected"] = s.connected;
    j["healthy"] = s.healthy();
    j["connects"] = s.connects;
    j["reconnects"] = s.reconnects;
    j["connect_failures"] = s.connect_failures;
    j["disconnects"] = s.disconnects;
    j["last_error"] = s.last_error;
    j["forwards"] = nlohmann::json::array();
    for (const auto& f : s.forwards) {
        nlohmann::json e{{"spec", f.spec.text},
                         {"kind", kind_name(f.spec.kind)},
                         {"listen", f.spec.listen.to_string()},
                         {"state", std::string(to_string(f.state))},
                         {"bytes_out", f.bytes_out},
                         {"bytes_in", f.bytes_in},
                         {"connections", f.connections},
                         {"failures", f.failures},
                         {"open_channels", f.open_channels},
                         {"last_error", f.last_error}};
        if (f.spec.kind != forward_kind::dynamic) e["target"] = f.spec.target.to_string();
        if (f.bound_port) e["bound_port"] = *f.bound_port;
        j["forwards"].push_back(std::move(e));
    }
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace tunnel::forward
