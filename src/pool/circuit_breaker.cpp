#include "pool/circuit_breaker.hpp"

#include <limits>

#include "core/duration.hpp"

namespace tunnel::pool {

std::string_view to_string(breaker_state state) noexcept {
    switch (state) {
        case breaker_state::closed:
            return "closed";
        case breaker_state::open:
            return "open";
        case breaker_state::half_open:
            return "half_open";
    }
    return "unknown";
}

circuit_breaker::circuit_breaker(breaker_settings settings, const core::clock& clock)
    : settings_(settings), clock_(clock) {}

bool circuit_breaker::allow() {
    return begin_attempt() != breaker_attempt::refused;
}

breaker_attempt circuit_breaker::begin_attempt() {
    std::lock_guard lock(mutex_);
    switch (state_) {
        case breaker_state::closed:
            return breaker_attempt::allowed;
        case breaker_state::open: {
            const auto now = clock_.now();
            if (now < opened_at_ + settings_.cool_down) return breaker_attempt::refused;
            state_ = breaker_state::half_open;
            probe_started_at_ = now;
            probe_out_ = true;
            return breaker_attempt::probe;
        }
        case breaker_state::half_open: {
            // The outstanding probe never reported: let another one through.
            const auto now = clock_.now();
            if (probe_out_ && now < probe_started_at_ + settings_.cool_down)
                return breaker_attempt::refused;
            probe_started_at_ = now;
            probe_out_ = true;
            return breaker_attempt::probe;
        }
    }
    return breaker_attempt::refused;
}

void circuit_breaker::release_probe() {
    std::lock_guard lock(mutex_);
    if (state_ == breaker_state::half_open) probe_out_ = false;
}

void circuit_breaker::on_success() {
    std::lock_guard lock(mutex_);
    if (state_ == breaker_state::open) return;
    state_ = breaker_state::closed;
    failures_ = 0;
    probe_out_ = false;
}

void circuit_breaker::on_failure() {
    std::lock_guard lock(mutex_);
    switch (state_) {
        case breaker_state::closed:
            if (failures_ < std::numeric_limits<unsigned>::max()) ++failures_;
            if (settings_.failure_threshold != 0 && failures_ >= settings_.failure_threshold) {
                open_locked(clock_.now());
            }
            return;
        case breaker_state::half_open:
            if (failures_ < std::numeric_limits<unsigned>::max()) ++failures_;
            open_locked(clock_.now());
            return;
        case breaker_state::open:
            return;
    }
}

void circuit_breaker::open_locked(core::clock::time_point now) {
    state_ = breaker_state::open;
    opened_at_ = now;
    probe_out_ = false;
}

breaker_state circuit_breaker::state() const {
    std::lock_guard lock(mutex_);
    return state_;
}

std::chrono::milliseconds circuit_breaker::retry_after() const {
    std::lock_guard lock(mutex_);
    core::clock::time_point until;
    switch (state_) {
        case breaker_state::closed:
            return std::chrono::milliseconds::zero();
        case breaker_state::open:
            until = opened_at_ + settings_.cool_down;
            break;
        case breaker_state::half_open:
            if (!probe_out_) return std::chrono::milliseconds::zero();
            until = probe_started_at_ + settings_.cool_down;
            break;
    }
    const auto now = clock_.now();
    if (now >= until) return std::chrono::milliseconds::zero();
    return std::chrono::ceil<std::chrono::milliseconds>(until - now);
}

unsigned circuit_breaker::consecutive_failures() const {
    std::lock_guard lock(mutex_);
    return failures_;
}

breaker_registry::breaker_registry(breaker_settings settings, const core::clock& clock)
    : settings_(settings), clock_(clock) {}

circuit_breaker& breaker_registry::get(std::string_view key) {
    std::lock_guard lock(mutex_);
    auto it = breakers_.find(key);
    if (it == breakers_.end()) {
        it = breakers_
                 .emplace(std::string(key), std::make_unique<circuit_breaker>(settings_, clock_))
                 .first;
    }
    return *it->second;
}

core::result<void> breaker_registry::check(std::string_view key) {
    circuit_breaker& breaker = get(key);
    if (breaker.allow()) return {};
    std::string message = "circuit open for " + std::string(key);
    if (breaker.state() == breaker_state::half_open) {
        message += ": a probe connection is in progress";
    } else {
        message += " after " + std::to_string(breaker.consecutive_failures()) +
                   " consecutive connection failures";
    }
    message += "; next attempt in " + core::format_duration(breaker.retry_after());
    return core::fail(core::errc::circuit_open, std::move(message));
}

std::vector<breaker_status> breaker_registry::snapshot() const {
    std::lock_guard lock(mutex_);
    std::vector<breaker_status> out;
    out.reserve(breakers_.size());
    for (const auto& [key, breaker] : breakers_) {
        out.push_back(
            {key, breaker->state(), breaker->consecutive_failures(), breaker->retry_after()});
    }
    return out;
}

std::size_t breaker_registry::size() const {
    std::lock_guard lock(mutex_);
    return breakers_.size();
}

}  // namespace tunnel::pool
