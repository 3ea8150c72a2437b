// An injectable monotonic clock (STYLE 14): code that measures time-outs,
// cool-downs or rates takes a `const core::clock&` so tests can drive time
// by hand instead of sleeping.
#pragma once

#include <atomic>
#include <chrono>

namespace tunnel::core {

// A source of monotonic time points. Implementations must be safe to call
// from several threads at once.
class clock {
  public:
    using time_point = std::chrono::steady_clock::time_point;
    using duration = std::chrono::steady_clock::duration;

    virtual ~clock() = default;

    // The current time. Never goes backwards.
    [[nodiscard]] virtual time_point now() const = 0;
};

// The process-wide real clock, backed by std::chrono::steady_clock. The
// returned object lives for the whole program.
[[nodiscard]] const clock& system_clock_source() noexcept;

// A clock that only moves when told to. For tests. now(), advance() and
// set() may be called from different threads.
class manual_clock final : public clock {
  public:
    // Starts at `start`; the default is an arbitrary fixed point, not zero,
    // so "start minus something" does not underflow in tests.
    explicit manual_clock(time_point start = time_point{} + std::chrono::hours(24)) noexcept
        : now_(start) {}

    [[nodiscard]] time_point now() const override { return now_.load(); }

    // Moves time forward by `step`. A negative step is ignored: the clock is
    // monotonic.
    void advance(duration step) noexcept;

    // Jumps to `to` if it is not earlier than now(); otherwise does nothing.
    void set(time_point to) noexcept;

  private:
    std::atomic<time_point> now_;
};

}  // namespace tunnel::core
