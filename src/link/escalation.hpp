// Recovery in steps for a link with no healthy transport (pure logic,
// unit-tested). Every failed connect of one of the link's transports while
// no transport carries the link counts; after each `per_step` of them the
// link takes the next step:
//   reconnect          (from the first failure: the lane's backoff, as always)
//   restart_transport  (the failing transport's session is dropped and its
//                       backoff reset: it connects again at once)
//   reset_link         (every transport's session is dropped, as
//                       `tunnel restart`: all connect again at once)
//   escalate           (once per outage: the `escalated` event, the
//                       tunnel_link_escalations_total metric, and with
//                       `tunnel up --exit-on-escalate` exit status 3)
// Any transport taking over ends the outage and starts the ladder again.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace tunnel::link {

enum class recovery_step { reconnect, restart_transport, reset_link, escalate };
[[nodiscard]] std::string_view to_string(recovery_step s) noexcept;

class recovery_ladder {
  public:
    // `per_step` failed connects per step (at least 1).
    explicit recovery_ladder(int per_step = 3) : per_step_(per_step < 1 ? 1 : per_step) {}

    // One more failed connect during the outage: the step to take now, when
    // the ladder moved up (each step is returned once per outage).
    [[nodiscard]] std::optional<recovery_step> on_failure() noexcept;
    // A transport carries the link again.
    void on_recovered() noexcept;

    [[nodiscard]] recovery_step step() const noexcept { return step_; }
    [[nodiscard]] int failures() const noexcept { return failures_; }
    [[nodiscard]] int per_step() const noexcept { return per_step_; }
    void set_per_step(int n) noexcept { per_step_ = n < 1 ? 1 : n; }

  private:
    int per_step_;
    int failures_ = 0;
    recovery_step step_ = recovery_step::reconnect;
};

}  // namespace tunnel::link
