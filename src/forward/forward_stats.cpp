#include "forward/forward_stats.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace tunnel::forward {

std::string_view to_string(forward_kind k) noexcept {
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
                         {"kind", std::string(to_string(f.spec.kind))},
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
