// Exponential backoff with full jitter, for reconnect loops and retries
// (ARCHITECTURE §6). See "Exponential Backoff And Jitter", AWS Architecture
// Blog, 2015: full jitter spreads retrying clients evenly and finishes the
// work with the fewest calls.
#pragma once

#include <chrono>
#include <functional>
#include <optional>

#include "core/error.hpp"

namespace tunnel::core {

struct backoff_policy {
    // Ceiling of the first delay; the ceiling doubles on every attempt.
    std::chrono::milliseconds base{100};
    // No delay ever exceeds this.
    std::chrono::milliseconds cap{std::chrono::seconds(30)};
    // Total attempts allowed, counting the first one (as gRPC's maxAttempts):
    // backoff::next() hands out max_attempts - 1 delays, then reports that
    // the caller should give up. 0 means never give up.
    unsigned max_attempts = 0;
};

// Checks base > 0 and cap >= base. The message names the field.
[[nodiscard]] result<void> validate(const backoff_policy& policy);

// min(cap, base * 2^attempt), without overflow for any attempt. Zero if base
// or cap is not positive. `attempt` counts from 0 (the delay before the
// first retry).
[[nodiscard]] std::chrono::milliseconds backoff_ceiling(const backoff_policy& policy,
                                                        unsigned attempt) noexcept;

// Returns a number in [0, 1). Values outside are clamped into range.
using random_source = std::function<double()>;

// A random_source backed by its own std::mt19937_64 seeded from
// std::random_device. Each call of this function makes an independent
// generator; the generator is not shared between threads.
[[nodiscard]] random_source default_random_source();

// The delays of one retry loop. Not thread-safe: one owner per loop.
//
//   core::backoff retry(policy);
//   while (!try_connect()) {
//       auto delay = retry.next();
//       if (!delay) return give_up();
//       sleep_for(*delay);
//   }
class backoff {
  public:
    explicit backoff(backoff_policy policy, random_source random = default_random_source());

    // The full-jitter delay for `attempt`: uniform over whole milliseconds
    // in [0, backoff_ceiling(policy, attempt)], both ends included. Does not
    // count against max_attempts.
    [[nodiscard]] std::chrono::milliseconds delay(unsigned attempt);

    // The delay before the next retry, or nullopt once max_attempts attempts
    // have been made. Each call counts one failed attempt.
    [[nodiscard]] std::optional<std::chrono::milliseconds> next();

    // Attempts that have failed so far (calls of next() that returned a delay
    // or reported exhaustion).
    [[nodiscard]] unsigned failures() const noexcept { return failures_; }

    // Call after a success, so the next failure starts again from `base`.
    void reset() noexcept { failures_ = 0; }

    [[nodiscard]] const backoff_policy& policy() const noexcept { return policy_; }

  private:
    backoff_policy policy_;
    random_source random_;
    unsigned failures_ = 0;
};

}  // namespace tunnel::core
