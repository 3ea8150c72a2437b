// The minimum body rate (issue 10, finding 5; limits.min_body_rate and
// limits.min_body_rate_grace): while the relay waits on a caller, for
// request-body bytes it sends or for it to take response bytes, the caller
// must move min_body_rate bytes per second on average.
//
// A credit measured in seconds: it starts at the grace, the time the relay
// spends waiting on the caller is taken from it, and every byte that moves
// gives back 1/min_body_rate s, never above the grace. When it reaches zero
// the caller is too slow. So a caller that stops is cut off after the grace
// (however much it sent before: credit cannot be banked beyond the grace), one
// that trickles at a quarter of the rate after 4/3 of the grace, and a byte
// now and then does not restart anything. Time spent waiting on the origin
// is never charged: the relay charges only its own waits on the caller.
// No I/O; unit-tested in tests/unit/relay/body_rate_test.cpp.
#pragma once

#include <chrono>
#include <cstddef>

namespace tunnel::relay {

class body_rate {
  public:
    using duration = std::chrono::steady_clock::duration;

    // min_rate <= 0 turns the check off (budget() is then unlimited).
    body_rate(double min_rate, std::chrono::milliseconds grace);

    // The relay waited `waited` on the caller, who then moved `bytes`.
    void record(duration waited, std::size_t bytes);

    // How long the relay may still wait on the caller; duration::max() when
    // the check is off, zero once it is exhausted.
    [[nodiscard]] duration budget() const;
    [[nodiscard]] bool exhausted() const { return enabled() && credit_ <= 0; }
    [[nodiscard]] bool enabled() const { return min_rate_ > 0; }

  private:
    double min_rate_;
    double grace_;   // seconds
    double credit_;  // seconds
};

}  // namespace tunnel::relay
