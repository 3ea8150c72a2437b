// A circuit breaker per destination host (ARCHITECTURE §2, pool): after a
// run of connection failures, fail fast instead of making every caller wait
// for a time-out, and let one probe through after a cool-down.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/error.hpp"

namespace tunnel::pool {

// What begin_attempt() decided.
enum class breaker_attempt {
    refused,
    allowed,  // closed: an ordinary attempt
    probe,    // the half-open probe: its outcome decides the state
};

enum class breaker_state {
    closed,     // attempts go through; failures are counted
    open,       // attempts are refused until the cool-down has passed
    half_open,  // one probe attempt is out; others are refused until it reports
};

[[nodiscard]] std::string_view to_string(breaker_state state) noexcept;

struct breaker_settings {
    // Consecutive connection failures that open the breaker. 0 disables the
    // breaker: it never opens.
    unsigned failure_threshold = 5;
    // How long an open breaker refuses attempts before allowing a probe.
    // Also how long a probe may stay unanswered before another is allowed.
    std::chrono::milliseconds cool_down{std::chrono::seconds(30)};
};

// Every allow() that returns true must be followed by exactly one
// on_success() or on_failure() for that attempt. Only connection-level
// outcomes should be reported (refused, unreachable, handshake time-out);
// a remote command that exits non-zero is a success here.
//
// State machine:
//   closed    -- failure_threshold consecutive failures --> open
//   open      -- allow() once cool_down has passed      --> half_open (that call is the probe)
//   half_open -- probe succeeds                          --> closed
//   half_open -- probe fails                             --> open, for another cool_down
// Outcomes that arrive while open (attempts allowed before it opened) are
// ignored: they neither close it nor extend the cool-down. Outcomes are not
// tied to attempts, so in half_open any reported outcome counts as the
// probe's. If a probe never reports, another probe is allowed cool_down
// after it started; a probe that ends without a verdict (release_probe())
// lets the next attempt be the probe at once.
//
// Thread-safe: all members may be called concurrently.
class circuit_breaker {
  public:
    // `clock` must outlive the breaker.
    explicit circuit_breaker(breaker_settings settings,
                             const core::clock& clock = core::system_clock_source());

    circuit_breaker(const circuit_breaker&) = delete;
    circuit_breaker& operator=(const circuit_breaker&) = delete;

    // True if an attempt may be made now. In the open state, the first call
    // after the cool-down returns true and makes that attempt the probe.
    [[nodiscard]] bool allow();
    // allow(), saying whether the attempt is the probe.
    [[nodiscard]] breaker_attempt begin_attempt();

    // The probe ended without telling anything about the destination (its
    // caller went away or sent garbage): in half_open, the next attempt may
    // be a probe at once. No effect in other states.
    void release_probe();

    void on_success();
    void on_failure();

    // The stored state. An open breaker whose cool-down has passed stays
    // `open` until the next allow(); retry_after() is then zero.
    [[nodiscard]] breaker_state state() const;

    // How long until allow() could return true: zero when closed or when the
    // cool-down has passed; otherwise the rest of the cool-down (or of the
    // outstanding probe's lease), rounded up to whole milliseconds.
    [[nodiscard]] std::chrono::milliseconds retry_after() const;

    // Failures since the last success, including those that opened it.
    [[nodiscard]] unsigned consecutive_failures() const;

    [[nodiscard]] const breaker_settings& settings() const noexcept { return settings_; }

  private:
    void open_locked(core::clock::time_point now);

    const breaker_settings settings_;
    const core::clock& clock_;
    mutable std::mutex mutex_;
    breaker_state state_ = breaker_state::closed;
    unsigned failures_ = 0;
    core::clock::time_point opened_at_{};         // valid when open
    core::clock::time_point probe_started_at_{};  // valid when half_open
    bool probe_out_ = false;                      // half_open: a probe has not reported
};

struct breaker_status {
    std::string key;
    breaker_state state;
    unsigned consecutive_failures;
    std::chrono::milliseconds retry_after;
};

// Breakers keyed by destination ("user@host:port"), created on first use
// with shared settings. Thread-safe. Breakers are never removed, so a
// reference returned by get() stays valid for the registry's lifetime; the
// key set is bounded by the hosts this process talks to.
class breaker_registry {
  public:
    // `clock` must outlive the registry.
    explicit breaker_registry(breaker_settings settings,
                              const core::clock& clock = core::system_clock_source());

    // The breaker for `key`, created closed if it does not exist yet.
    [[nodiscard]] circuit_breaker& get(std::string_view key);

    // allow() on the breaker for `key`, as an error a caller can return:
    // errc::circuit_open with a message such as
    //   circuit open for deploy@web1:22 after 5 consecutive connection failures; next attempt
    //   in 12.5s
    [[nodiscard]] core::result<void> check(std::string_view key);

    // The state of every breaker, sorted by key. For diagnostics.
    [[nodiscard]] std::vector<breaker_status> snapshot() const;

    [[nodiscard]] std::size_t size() const;

  private:
    const breaker_settings settings_;
    const core::clock& clock_;
    mutable std::mutex mutex_;
    std::map<std::string, std::unique_ptr<circuit_breaker>, std::less<>> breakers_;
};

}  // namespace tunnel::pool
