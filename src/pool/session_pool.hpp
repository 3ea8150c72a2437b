// Sessions kept warm and shared, keyed by user@host:port. Several channels run
// concurrently on one session up to the server's MaxSessions; more sessions
// open up to per-destination and total limits; idle and over-age sessions are
// closed; an idle session is checked for liveness before it is reused.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>

#include "core/asio.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "ssh/session.hpp"

namespace tunnel::pool {

struct pool_limits {
    std::size_t max_sessions_per_destination = 4;
    std::size_t max_sessions_total = 256;
    std::size_t max_channels_per_session = 10;  // OpenSSH's default MaxSessions
    std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};
    std::chrono::milliseconds max_lifetime{std::chrono::minutes(10)};
};

[[nodiscard]] core::result<void> validate(const pool_limits& limits);

class session_pool {
  public:
    using connector = std::function<asio::awaitable<core::result<std::shared_ptr<ssh::session>>>(
        asio::any_io_executor, ssh::connect_options)>;

    struct entry;

    // A channel slot on a pooled session; gives the slot back when destroyed.
    class lease {
      public:
        lease(lease&&) noexcept = default;
        lease& operator=(lease&&) noexcept = default;
        ~lease();
        [[nodiscard]] const std::shared_ptr<ssh::session>& session() const;
        [[nodiscard]] bool reused() const noexcept { return reused_; }
        // The server refused another channel: treat this session as full at
        // its current channel count from now on.
        void mark_full();
        // The session is broken: never hand it out again.
        void discard();

      private:
        friend class session_pool;
        lease(session_pool* pool, std::shared_ptr<entry> e, bool reused);
        session_pool* pool_ = nullptr;
        std::shared_ptr<entry> entry_;
        bool reused_ = false;
    };

    // Liveness probe run on an idle session before it is reused.
    using liveness_check = std::function<bool(const std::shared_ptr<ssh::session>&)>;

    // `connect` and `alive` default to the real ones; tests inject their own.
    session_pool(asio::any_io_executor executor, pool_limits limits = {},
                 const core::clock& clock = core::system_clock_source(), connector connect = {},
                 liveness_check alive = {});
    ~session_pool();

    // A slot on a live session to `opts.destination()`, connecting if needed.
    // Waits (up to opts.connect_timeout) when every allowed session is full.
    asio::awaitable<core::result<lease>> acquire(const ssh::connect_options& opts);

    // Closes sessions past idle_timeout or max_lifetime that have no channels.
    void evict_expired();

    // Disconnects every session that has no channel in use now (and marks the
    // others broken, so they are closed once their leases are returned). A
    // command calls it when it is done: a session through ProxyJump keeps
    // coroutines (its jump bridge) running on the executor until it is closed.
    void close();

    [[nodiscard]] std::size_t session_count() const noexcept;
    [[nodiscard]] std::size_t session_count(const std::string& destination) const;
    [[nodiscard]] const pool_limits& limits() const noexcept { return limits_; }

  private:
    void release(entry& e);

    asio::any_io_executor executor_;
    pool_limits limits_;
    const core::clock& clock_;
    connector connect_;
    liveness_check alive_;
    std::list<std::shared_ptr<entry>> entries_;
    std::size_t connecting_ = 0;
    // Connects in flight per destination: callers wait for them rather than
    // opening one session each, and they count against the per-destination limit.
    std::map<std::string, std::size_t, std::less<>> connecting_to_;
    // The last failed connect per destination, handed to the callers that
    // were waiting for it.
    struct connect_failure {
        core::error error;
        ssh::time_point at;
    };
    std::map<std::string, connect_failure, std::less<>> last_failure_;
    asio::steady_timer slot_freed_;
};

}  // namespace tunnel::pool
