#include "core/clock.hpp"

namespace tunnel::core {

namespace {

class steady_clock_source final : public clock {
  public:
    [[nodiscard]] time_point now() const override { return std::chrono::steady_clock::now(); }
};

}  // namespace

const clock& system_clock_source() noexcept {
    static const steady_clock_source source;
    return source;
}

void manual_clock::advance(duration step) noexcept {
    if (step <= duration::zero()) return;
    time_point current = now_.load();
    while (!now_.compare_exchange_weak(current, current + step)) {
    }
}

void manual_clock::set(time_point to) noexcept {
    time_point current = now_.load();
    while (current < to && !now_.compare_exchange_weak(current, to)) {
    }
}

}  // namespace tunnel::core
