// link's recovery steps and failure prediction (see escalation.hpp and
// rtt_prediction.hpp); the rest of link is in link.cpp.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cmath>

#include "core/log_text.hpp"
#include "link/link.hpp"
#include "link/link_lane.hpp"

namespace tunnel::link {

void link::recover(std::size_t index) {
    if (stopped_) return;
    const auto step = recovery_.on_failure();
    if (!step) return;
    auto& l = *lanes_[index];
    const auto tname = l.transport.config.name;
    const auto error = core::log_text(l.last_error, 200);
    switch (*step) {
        case recovery_step::reconnect:
            return;
        case recovery_step::restart_transport:
            spdlog::warn("link {}: no transport after {} failed connects: restarting transport {}",
                         config_.name, recovery_.failures(), tname);
            emit({{"type", "recovery"},
                  {"step", "restart_transport"},
                  {"transport", tname},
                  {"failed_connects", recovery_.failures()}});
            // Drop its session (if a half-open one is left) and connect again at once.
            l.kick = true;
            if (l.session) drop(l, "recovery: restarting the transport");
            l.retry.reset();
            return;
        case recovery_step::reset_link:
            spdlog::warn("link {}: no transport after {} failed connects: resetting the link",
                         config_.name, recovery_.failures());
            emit({{"type", "recovery"},
                  {"step", "reset_link"},
                  {"failed_connects", recovery_.failures()}});
            restart();
            return;
        case recovery_step::escalate:
            ++escalations_;
            spdlog::error("link {}: no transport after {} failed connects: escalating ({})",
                          config_.name, recovery_.failures(), error);
            emit({{"type", "escalated"},
                  {"failed_connects", recovery_.failures()},
                  {"transport", tname},
                  {"error", error}});
            return;
    }
}

nlohmann::json link::prediction(std::size_t index) const {
    const auto p = lanes_[index]->health.predicted_failure(config_.probe_timeout());
    if (!p) return nullptr;
    auto round = [](double v) { return std::round(v * 10.0) / 10.0; };
    return {{"in", round(p->in_s)}, {"error", round(p->error_s)}};
}

}  // namespace tunnel::link
