// Idle forwarded-tcpip channels of one tunnel, per published name: an HTTP
// keep-alive pool. A channel whose last exchange ended cleanly (the whole
// response read, the origin keeping its connection open, nothing unread) is
// put back instead of closed, and the next request for the name, on any
// public connection, takes it: no channel open at the relay, no new
// connection to the origin at `tunnel connect` (ARCHITECTURE §5, docs/relay.md
// "Keep-alive pool"). The most recently used channel is taken first; channels
// idle past `idle_timeout`, closed by the client or holding unread bytes are
// dropped. Lives on the tunnel's executor; internal to relay/.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/asio.hpp"
#include "ssh/server_session.hpp"

namespace tunnel::relay {

struct channel_pool_options {
    unsigned per_name = 32;                          // idle channels kept per name
    std::chrono::milliseconds idle_timeout{30'000};  // then closed
};

class channel_pool {
  public:
    using clock = std::chrono::steady_clock;

    channel_pool(const asio::any_io_executor& ex, channel_pool_options o);
    channel_pool(const channel_pool&) = delete;
    channel_pool& operator=(const channel_pool&) = delete;
    ~channel_pool();

    // An idle channel for `name` that is still usable, or nullptr.
    [[nodiscard]] std::unique_ptr<ssh::server_channel> take(const std::string& name);
    // Keeps `ch` for `name` when it is usable and there is room; else it is
    // closed (destroyed).
    void put(const std::string& name, std::unique_ptr<ssh::server_channel> ch);
    // Hands the idle channels of `name` to the caller (the name was
    // unpublished), to close outside a libssh callback.
    [[nodiscard]] std::vector<std::unique_ptr<ssh::server_channel>> release(
        const std::string& name);
    // Hands every idle channel to the caller (to close outside a libssh
    // callback) and stops the sweep timer.
    [[nodiscard]] std::vector<std::unique_ptr<ssh::server_channel>> release_all();

    [[nodiscard]] std::size_t idle() const noexcept { return count_; }

    // Whether `ch` can carry another request: open, no EOF, nothing unread.
    [[nodiscard]] static bool usable(const ssh::server_channel& ch) noexcept;

  private:
    struct entry {
        std::unique_ptr<ssh::server_channel> channel;
        clock::time_point since;
    };
    void sweep(clock::time_point now);
    void arm();

    channel_pool_options options_;
    std::map<std::string, std::deque<entry>> idle_;
    std::size_t count_ = 0;
    asio::steady_timer timer_;
    bool armed_ = false;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace tunnel::relay
