// Cluster-wide rate limits (docs/cluster.md "Rate limits"): token buckets
// kept in Redis, `<prefix>bucket:<key>`, refilled at `rate` per second up to
// `burst`, by one Lua script that reads the server's clock (so relays with
// skewed clocks still share one bucket). EVALSHA, EVAL on NOSCRIPT.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "cluster/redis_client.hpp"
#include "cluster/redis_script.hpp"

namespace tunnel::cluster {

struct bucket_decision {
    bool allowed = false;
    std::chrono::milliseconds retry_after{0};  // refused: until enough tokens are back
    long long tokens_left = 0;                 // whole tokens after this take
};

// take_up_to: what a relay fetching a batch got.
struct bucket_grant {
    long long granted = 0;                     // whole tokens, 0..max
    std::chrono::milliseconds retry_after{0};  // none granted: until one is back
};

class shared_buckets {
  public:
    explicit shared_buckets(std::shared_ptr<redis_client> redis, std::string prefix = "tunnel:");

    // Takes `cost` tokens from the bucket `key` (e.g. "rps:acme").
    [[nodiscard]] asio::awaitable<core::result<bucket_decision>> take(std::string key, double rate,
                                                                      double burst,
                                                                      double cost = 1);

    // Takes as many whole tokens as the bucket holds, at most `max` (a
    // relay refilling its local share in batches: relay/shared_rate_limiter.hpp).
    [[nodiscard]] asio::awaitable<core::result<bucket_grant>> take_up_to(std::string key,
                                                                         double rate, double burst,
                                                                         long long max);

    [[nodiscard]] const redis_script& script() const noexcept { return take_; }

  private:
    [[nodiscard]] asio::awaitable<core::result<reply>> run(const redis_script& script,
                                                           std::string key, double rate,
                                                           double burst, double amount);

    std::shared_ptr<redis_client> redis_;
    std::string prefix_;
    redis_script take_;
    redis_script take_up_to_;
};

}  // namespace tunnel::cluster
