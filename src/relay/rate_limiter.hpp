// Token-bucket rate limits keyed by string (per tenant, per route), with an
// injectable clock (STYLE 14) and a bound on the number of buckets kept.
#pragma once

#include <chrono>
#include <cstddef>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/clock.hpp"

namespace tunnel::relay {

struct bucket_settings {
    double rate = 10;   // tokens added per second; must be > 0
    double burst = 20;  // bucket capacity; must be >= 1
};

struct rate_decision {
    bool allowed = false;
    // When refused: how long until the request would be allowed.
    std::chrono::milliseconds retry_after{0};
    // retry_after rounded up to whole seconds (>= 1 when refused), for a
    // `Retry-After` header.
    [[nodiscard]] long long retry_after_seconds() const noexcept;
};

// Where admission takes its tokens (admission.hpp: check_rates): this
// relay's own buckets (rate_limiter), or buckets shared by the relays of a
// cluster (shared_rate_limiter.hpp). Thread-safe; never waits on I/O.
class rate_source {
  public:
    virtual ~rate_source() = default;
    // Takes `cost` tokens from `key`'s bucket if it has them.
    [[nodiscard]] virtual rate_decision acquire(std::string_view key, bucket_settings settings,
                                                double cost = 1) = 0;
};

// Thread-safe. Each key has one bucket; a new bucket starts full. The
// settings are passed per call (a tenant's rps comes from its token), and a
// bucket adopts the latest settings it is called with.
//
// At most `max_keys` buckets are kept. When a new key arrives at the bound,
// buckets that have refilled to full (indistinguishable from a new one) are
// dropped first; if none has, the least recently used bucket is dropped and
// evictions() counts it (that key starts over with a full bucket).
class rate_limiter final : public rate_source {
  public:
    explicit rate_limiter(std::size_t max_keys = 10000,
                          const core::clock& clock = core::system_clock_source());

    rate_limiter(const rate_limiter&) = delete;
    rate_limiter& operator=(const rate_limiter&) = delete;

    [[nodiscard]] rate_decision acquire(std::string_view key, bucket_settings settings,
                                        double cost = 1) override;

    [[nodiscard]] std::size_t size() const;
    // Buckets dropped while not yet full (the bound was too small for the load).
    [[nodiscard]] std::size_t evictions() const;

  private:
    struct bucket {
        double tokens = 0;
        core::clock::time_point updated;
        bucket_settings settings;
        std::list<std::string>::iterator lru;
    };

    void refill(bucket& b, core::clock::time_point now) const;
    void make_room(core::clock::time_point now);

    std::size_t max_keys_;
    const core::clock& clock_;
    mutable std::mutex mutex_;
    std::unordered_map<std::string, bucket> buckets_;
    std::list<std::string> lru_;  // front = most recently used
    std::size_t evictions_ = 0;
};

}  // namespace tunnel::relay
