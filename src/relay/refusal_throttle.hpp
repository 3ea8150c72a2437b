// Refused tunnel attaches per source address (issue 10, finding 7;
// limits.attach_refusals_per_ip, limits.attach_refusal_window). The first
// refusals of a window are answered, logged and audited one by one; once a
// source has had attach_refusals_per_ip of them, its further attempts until
// the window ends are answered 429 before any token is looked at and are only
// counted. When a window in which attempts were throttled ends, take_ended()
// hands out one summary for it, which the relay logs and audits instead of
// one record per attempt. So a flood of bad tokens costs the audit log a few
// lines per source and window, not one per attempt.
//
// At most `max_sources` sources are tracked; past that, ended windows are
// forgotten first, then the oldest. No I/O, injectable clock; unit-tested in
// tests/unit/relay/refusal_throttle_test.cpp.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/clock.hpp"

namespace tunnel::relay {

struct throttle_settings {
    unsigned max_refusals = 10;  // per source and window
    std::chrono::milliseconds window{std::chrono::seconds(60)};
};

class refusal_throttle {
  public:
    explicit refusal_throttle(throttle_settings settings, std::size_t max_sources = 10000,
                              const core::clock& clock = core::system_clock_source());

    struct verdict {
        bool throttled = false;
        std::chrono::milliseconds retry_after{0};  // until the source's window ends
        [[nodiscard]] long long retry_after_seconds() const noexcept;
    };

    // Before an attempt from `source`: throttled (answer 429, record nothing;
    // the attempt is counted in the window's summary) or not.
    [[nodiscard]] verdict check(const std::string& source);

    // After a refusal of an attempt from `source` that check() let through.
    // True when this refusal is the one that starts throttling the source
    // (log that once).
    bool record_refusal(const std::string& source);

    struct summary {
        std::string source;
        unsigned refusals = 0;    // answered one by one
        unsigned suppressed = 0;  // answered 429 without a record
        std::chrono::milliseconds window{0};
    };
    // Windows that have ended with attempts throttled: one summary each.
    // Ended windows are forgotten either way.
    [[nodiscard]] std::vector<summary> take_ended();
    // Every window with attempts throttled, ended or not (at shutdown).
    [[nodiscard]] std::vector<summary> take_all();

    [[nodiscard]] std::size_t size() const {
        std::lock_guard lock(mutex_);
        return sources_.size();
    }
    [[nodiscard]] const throttle_settings& settings() const noexcept { return settings_; }

  private:
    struct entry {
        core::clock::time_point started;
        unsigned refusals = 0;
        unsigned suppressed = 0;
    };
    [[nodiscard]] bool ended(const entry& e, core::clock::time_point now) const;
    void make_room(core::clock::time_point now);

    throttle_settings settings_;
    std::size_t max_sources_;
    const core::clock& clock_;
    std::unordered_map<std::string, entry> sources_;
    std::vector<summary> pending_;  // summaries of windows dropped to make room
    // The relay's workers share one throttle: every public method locks
    // (a refused attach or wrong credential, never a proxied request).
    mutable std::mutex mutex_;
};

}  // namespace tunnel::relay
