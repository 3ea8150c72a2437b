// Keeps `tunnel connect` attached past its token's expiry: before the token
// expires (relay/token_source.hpp renewal_margin) it fetches a fresh one
// (the file again, or --token-command), and when a token file changes it
// reads it; then, at a quiet moment (no bytes moved on the tunnel for
// 100 ms, waited for up to the margin), it makes the supervisor attach again
// with the new token. The relay's lease gives the names back at once, and a
// request that arrives in the gap waits in the relay's queue.
//
//   token_renewal renewal(executor, source, supervisor, on_renewed);
//   core::spawn(executor, renewal.run(), "token renewal");  ... renewal.stop();
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "core/asio.hpp"
#include "forward/supervisor.hpp"
#include "relay/token_source.hpp"

namespace tunnel::relay {

// Waits until the tunnel moved no byte and opened no channel for 100 ms
// with no channel open (or for 1 s, whatever is open: channels a relay
// keeps for keep-alive are idle), at most `limit` (or until `stopped`);
// whether it was quiet. The caller
// swaps the session at once after it (no co_await in between), so no
// request starts meanwhile. Also used to move back to a preferred relay
// (relay_failover.hpp).
asio::awaitable<bool> quiet_moment(asio::steady_timer& timer, const forward::supervisor& s,
                                   std::chrono::milliseconds limit, const bool& stopped);

struct token_renewed {
    std::chrono::system_clock::time_point expires;  // the new token's exp (epoch if none)
    bool file_changed = false;                      // a changed token file, not an expiry
};

class token_renewal {
  public:
    token_renewal(asio::any_io_executor executor, std::shared_ptr<token_source> source,
                  std::shared_ptr<forward::supervisor> supervisor,
                  std::function<void(const token_renewed&)> on_renewed = {});

    // Runs until stop(); never throws.
    asio::awaitable<void> run();
    void stop();
    // Renews for this supervisor from now on (tunnel connect moved its names
    // to a session on another relay).
    void follow(std::shared_ptr<forward::supervisor> supervisor) {
        supervisor_ = std::move(supervisor);
    }

  private:
    asio::awaitable<void> sleep(std::chrono::milliseconds d);

    asio::steady_timer timer_;
    std::shared_ptr<token_source> source_;
    std::shared_ptr<forward::supervisor> supervisor_;
    std::function<void(const token_renewed&)> on_renewed_;
    std::string warned_for_;  // the token in use when a retry was last said
    bool stopped_ = false;
};

}  // namespace tunnel::relay
