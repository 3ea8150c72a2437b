// The sending side's hop connections (docs/cluster.md "The proxy hop"):
// connecting to an owner relay's cluster.internal_listen (connect_hop), the
// signed preamble that binds a hop connection to one request's route and
// caller (sign_hop), and the idle hop connections kept per owner between
// requests (hop_pool): a connection whose response ended cleanly goes back
// to its worker's pool and carries a later request, of any public
// connection, after a new preamble. Internal to relay/.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <map>
#include <optional>
#include <string>

#include "core/asio.hpp"
#include "core/close_registry.hpp"
#include "core/error.hpp"

namespace tunnel::relay {

class relay_state;

inline constexpr std::chrono::milliseconds hop_connect_timeout{2'000};
// An idle pooled hop connection is closed after this long (the owner waits
// hop_next_preamble_timeout for the next preamble: longer, so the sender
// closes first and never sends on a connection the owner is closing).
inline constexpr std::chrono::milliseconds hop_pool_idle_timeout{20'000};
inline constexpr std::size_t hop_pool_max_idle = 32;  // per owner, per worker

// Connects to `address` (HOST:PORT, an owner's announced hop address) within
// hop_connect_timeout, with TCP_NODELAY. The error says what failed.
asio::awaitable<core::result<asio::ip::tcp::socket>> connect_hop(asio::any_io_executor ex,
                                                                 std::string address);

// The preamble line (CRLF included) that binds a hop connection to the
// route tenant/name for a caller at `client_ip`, signed with this relay's
// cluster secret.
[[nodiscard]] core::result<std::string> sign_hop(const relay_state& relay,
                                                 const std::string& tenant, const std::string& name,
                                                 const std::string& client_ip, bool https);

// Idle hop connections of one worker, per owner address; touched only on
// that worker's thread. Bounded (hop_pool_max_idle per owner), expired
// after hop_pool_idle_timeout, closed by a shutdown.
class hop_pool {
  public:
    hop_pool() = default;
    hop_pool(const hop_pool&) = delete;
    hop_pool& operator=(const hop_pool&) = delete;

    // The most recently used idle connection to `owner` that still looks
    // open (the owner has not closed it, nor sent anything), if any.
    [[nodiscard]] std::optional<asio::ip::tcp::socket> take(
        const std::string& owner, std::chrono::steady_clock::time_point now);
    // Keeps `sock` for the next request to `owner`; closes it instead when
    // the pool is closed or full.
    void put(const std::string& owner, asio::ip::tcp::socket sock,
             std::chrono::steady_clock::time_point now);
    // Closes every idle connection, and every one put from now on.
    void close();
    [[nodiscard]] std::size_t idle(const std::string& owner) const;

  private:
    struct idle_hop {
        asio::ip::tcp::socket sock;
        std::chrono::steady_clock::time_point since;
    };
    void expire(std::deque<idle_hop>& hops, std::chrono::steady_clock::time_point now);
    std::map<std::string, std::deque<idle_hop>> idle_;
    bool closed_ = false;

    friend hop_pool& hop_pool_of(relay_state& relay, unsigned worker);
    core::close_registry::handle owned_;  // a shutdown closes the pool
};

// Worker `worker`'s pool (created on first use; call on that worker).
[[nodiscard]] hop_pool& hop_pool_of(relay_state& relay, unsigned worker);

}  // namespace tunnel::relay
