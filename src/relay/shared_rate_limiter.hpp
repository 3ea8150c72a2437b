// Rate limits shared by the relays of a cluster (docs/cluster.md "Rate
// limits"). Requests are admitted synchronously, so they never wait for
// Redis: each relay keeps a local balance per bucket key and refills it in
// batches from the shared bucket in Redis (cluster::shared_buckets::
// take_up_to), in the background, when the balance falls below half a batch.
//
// The balance may go below zero by up to one batch, or a quarter of the
// burst when that is more (credit), while the
// shared bucket last said it had tokens, so a relay that has not fetched yet
// (a new key, an idle one) admits at once; that debt is paid from the next
// grants before anything is admitted from them. When the shared bucket ran
// dry (a short grant) the relay admits only what it holds until the bucket
// has tokens again, and refuses with its Retry-After. So N relays together
// admit at most burst + rate x t + N x max(batch, burst / 4) in any run, and one relay holds
// at most a batch it does not use.
//
// While Redis is away (`shared_up` false), decisions go to `fallback`: this
// relay's own buckets at the full configured rate (a cluster of N relays then
// admits up to N times the limit: availability first).
//
// Thread-safe; acquire() never blocks on I/O. The clock is injectable and
// the fetch is a function, so the logic is unit-tested without Redis
// (tests/unit/relay/shared_rate_limiter_test.cpp).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/clock.hpp"
#include "relay/rate_limiter.hpp"

namespace tunnel::relay {

class shared_rate_limiter final : public rate_source,
                                  public std::enable_shared_from_this<shared_rate_limiter> {
  public:
    // What the shared bucket granted: 0..want whole tokens; when none,
    // how long until one is back.
    struct grant {
        long long granted = 0;
        std::chrono::milliseconds retry_after{0};
    };
    // A fetch's answer: a grant, or nullopt when Redis could not be asked.
    using fetch_done = std::function<void(std::optional<grant>)>;
    // Asks the shared bucket `key` for up to `want` tokens; calls `done`
    // exactly once, on any thread (possibly before returning).
    using fetcher = std::function<void(const std::string& key, bucket_settings settings,
                                       long long want, fetch_done done)>;

    // How long to wait before asking again after a failed fetch.
    static constexpr std::chrono::milliseconds fetch_retry{250};

    [[nodiscard]] static std::shared_ptr<shared_rate_limiter> create(
        fetcher fetch, std::function<bool()> shared_up, rate_source& fallback,
        const core::clock& clock = core::system_clock_source(), std::size_t max_keys = 10000);

    [[nodiscard]] rate_decision acquire(std::string_view key, bucket_settings settings,
                                        double cost = 1) override;

    // The batch fetched for a bucket: about 0.1 s of its rate, at most a
    // quarter of its burst, 1..1000 tokens.
    [[nodiscard]] static long long batch_for(bucket_settings settings) noexcept;

    // The local balance of `key` (negative: credit not yet paid); for tests.
    [[nodiscard]] double balance(std::string_view key) const;
    [[nodiscard]] std::size_t size() const;
    [[nodiscard]] std::uint64_t fetches() const noexcept { return fetches_; }

  private:
    using time_point = core::clock::time_point;
    struct entry {
        double balance = 0;
        bucket_settings settings;
        bool fetching = false;
        time_point starved_until{};  // until then: no credit (the shared bucket is dry)
        time_point next_fetch{};     // no fetch before (starved, or a failed fetch)
        time_point used{};
    };

    shared_rate_limiter(fetcher fetch, std::function<bool()> shared_up, rate_source& fallback,
                        const core::clock& clock, std::size_t max_keys);

    void fetched(const std::string& key, long long want, std::optional<grant> g);
    void make_room(time_point now);
    void note_fallback(bool local);

    fetcher fetch_;
    std::function<bool()> shared_up_;
    rate_source& fallback_;
    const core::clock& clock_;
    std::size_t max_keys_;
    mutable std::mutex mutex_;
    std::unordered_map<std::string, entry> entries_;
    std::atomic<std::uint64_t> fetches_{0};
    std::atomic<bool> local_{false};  // deciding locally (Redis away), for the log
};

}  // namespace tunnel::relay
