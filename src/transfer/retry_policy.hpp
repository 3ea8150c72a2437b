// When `tunnel cp --retries N` and `tunnel sync --retries N` try again, and
// after how long. Pure: the clock's part is a delay handed back, the
// randomness is injectable.
//
// A connection that is lost (reset, closed, a server that stopped answering,
// a reconnect that was refused) is retried; an error that would be the same
// next time (permission denied, a missing source, a full disk, a host key
// that changed, authentication refused) is not.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "core/backoff.hpp"
#include "core/error.hpp"

namespace tunnel::transfer {

// Most reconnects `--retries` accepts.
inline constexpr unsigned max_retries = 100;

// The --retries value: a whole number from 0 to max_retries. The message
// names the flag, the value and the range.
[[nodiscard]] core::result<unsigned> parse_retries(std::string_view text);

// True for failures of the connection rather than of the copy:
// disconnected, connection_failed, timeout, auth_unavailable.
[[nodiscard]] bool connection_lost(const core::error& e) noexcept;

// The backoff between attempts: full jitter, ceiling 1 s doubling to 30 s.
[[nodiscard]] core::backoff_policy default_retry_backoff() noexcept;

// What the retry loop tells the user before it waits.
struct retry_event {
    unsigned retry = 0;    // this retry, from 1
    unsigned retries = 0;  // the most there will be
    std::chrono::milliseconds delay{0};
    core::error cause;      // what ended the attempt
    bool connected = true;  // false: the attempt could not even connect
};

// "connection lost, retry 2/5 in 1.6s: <cause>" (or "cannot reconnect, ...").
[[nodiscard]] std::string describe(const retry_event& e);

// The last line of a copy that ended because the connection was lost, after
// `retries` reconnects: what happened and what to do (--resume, --retries).
// `ever_connected` false: no attempt got a connection at all.
[[nodiscard]] std::string lost_connection_advice(unsigned retries, bool ever_connected = true);

// Retries left and the delay before each. At most `retries` delays in all;
// the backoff grows while attempts fail without moving the copy forward and
// starts again from its base after one that did (each cut of a working link
// is a new blip, not a longer outage).
class retry_schedule {
  public:
    explicit retry_schedule(unsigned retries, core::backoff_policy policy = default_retry_backoff(),
                            core::random_source random = core::default_random_source());

    // The delay before the next attempt, or nullopt when no retry is left.
    // `progressed`: the attempt that just failed moved the copy forward.
    [[nodiscard]] std::optional<std::chrono::milliseconds> next(bool progressed);

    [[nodiscard]] unsigned used() const noexcept { return used_; }
    [[nodiscard]] unsigned allowed() const noexcept { return retries_; }

  private:
    unsigned retries_;
    unsigned used_ = 0;
    core::backoff backoff_;
};

}  // namespace tunnel::transfer
