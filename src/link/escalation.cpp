#include "link/escalation.hpp"

#include <algorithm>

namespace tunnel::link {

std::string_view to_string(recovery_step s) noexcept {
    switch (s) {
        case recovery_step::reconnect:
            return "reconnect";
        case recovery_step::restart_transport:
            return "restart_transport";
        case recovery_step::reset_link:
            return "reset_link";
        case recovery_step::escalate:
            return "escalate";
    }
    return "?";
}

std::optional<recovery_step> recovery_ladder::on_failure() noexcept {
    ++failures_;
    const int level = std::min(failures_ / per_step_, static_cast<int>(recovery_step::escalate));
    if (level <= static_cast<int>(step_)) return std::nullopt;
    step_ = static_cast<recovery_step>(level);
    return step_;
}

void recovery_ladder::on_recovered() noexcept {
    failures_ = 0;
    step_ = recovery_step::reconnect;
}

}  // namespace tunnel::link
