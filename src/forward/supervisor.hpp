// Keeps one SSH session to the target alive for a set of forwards
// (ARCHITECTURE §6): keepalives bound how long a dead peer goes unnoticed,
// reconnects back off exponentially with full jitter and never give up
// unless told, every -R is requested again on each new session, and -L/-D
// listeners keep listening throughout.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "core/backoff.hpp"
#include "forward/forward_stats.hpp"
#include "forward/local_forward.hpp"
#include "forward/remote_forward.hpp"
#include "forward/session_source.hpp"
#include "forward/socks.hpp"
#include "ssh/connect_options.hpp"

namespace tunnel::forward {

struct supervisor_options {
    ssh::connect_options target;
    std::vector<forward_spec> forwards;
    core::backoff_policy backoff{std::chrono::milliseconds(250), std::chrono::seconds(30), 0};
    bool reconnect = true;                 // false: the first loss (or failed connect) ends run()
    bool exit_on_forward_failure = false;  // a -R the server refuses ends run()
    std::chrono::milliseconds outage_wait{
        10'000};  // a local connection waits this long for a session
    std::chrono::milliseconds open_timeout{15'000};
    std::chrono::milliseconds forward_retry{5'000};  // re-request a refused -R this often
    std::optional<socks_credentials> socks_auth;
    // Called when a -R forward is listening (its stats carry bound_port).
    std::function<void(const forward_stats&)> on_remote_listening;
    // Called when the server refuses a -R (its stats carry last_error).
    std::function<void(const forward_stats&)> on_remote_refused;
    // Called before each connection attempt; may change the target (which
    // relay `tunnel connect --relay` tries next: relay/relay_failover.hpp).
    std::function<void(ssh::connect_options&)> before_connect;
    // Supplies randomness to the backoff (tests).
    core::random_source random = core::default_random_source();
};

class supervisor : public session_source, public std::enable_shared_from_this<supervisor> {
  public:
    // Binds every local listener (so "port in use" is reported at once).
    [[nodiscard]] static core::result<std::shared_ptr<supervisor>> create(
        asio::any_io_executor executor, supervisor_options options);

    // Connects and keeps reconnecting until stop(), --max-retries attempts
    // failed in a row, or a fatal error (bad credentials or host key on the
    // first attempt, --exit-on-forward-failure, --no-reconnect).
    asio::awaitable<core::result<void>> run();

    // Stops accepting, cuts the session and wakes run(); idempotent.
    void stop();
    // Cuts the current session (if any) so run() connects again at once, as
    // after a loss: listeners stay, -R forwards are requested again. For a
    // renewed credential (tunnel connect's token).
    void reconnect_now(const std::string& why);
    // Channels open on the current session, over every forward.
    [[nodiscard]] std::int64_t open_channels() const;

    asio::awaitable<std::shared_ptr<ssh::session>> acquire(ssh::time_point deadline) override;

    [[nodiscard]] supervisor_stats snapshot() const;
    // The local port of forward `index` (-L/-D), for port 0 and tests.
    [[nodiscard]] uint16_t local_port(std::size_t index) const;

    supervisor(asio::any_io_executor executor, supervisor_options options);

  private:
    asio::awaitable<core::result<void>> serve(std::shared_ptr<ssh::session> s);
    asio::awaitable<bool> request_remote(std::shared_ptr<ssh::session> s, std::size_t index);
    // Hands every forwarded-tcpip channel libssh has queued to its -R; never waits.
    void accept_remote_connections(const std::shared_ptr<ssh::session>& s);
    void set_session(std::shared_ptr<ssh::session> s);
    void set_state(forward_stats& f, forward_state state, std::string why = {});
    asio::awaitable<void> pause(std::chrono::milliseconds d);

    asio::any_io_executor executor_;
    supervisor_options options_;
    supervisor_stats stats_;
    std::vector<std::shared_ptr<forward_stats>> forward_stats_;
    std::vector<std::shared_ptr<local_forward>> locals_;    // by forward index (null for -R)
    std::vector<std::unique_ptr<remote_forward>> remotes_;  // by forward index (null for -L/-D)
    std::shared_ptr<ssh::session> current_;
    std::vector<asio::steady_timer*> acquirers_;
    asio::steady_timer pause_timer_;
    bool any_remote_ = false;
    bool stopped_ = false;
};

}  // namespace tunnel::forward
