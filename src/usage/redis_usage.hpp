// Usage analytics of a relay cluster (docs/cluster.md "Usage analytics"):
// every relay adds what it counted to the same hourly hashes in Redis
// (redis_usage_keys.hpp), and GET /api/v1/usage on any relay reads them, so
// every relay reports the same cluster-wide numbers.
//
// Every usage.flush_interval the counts the recorder holds are taken and
// added with one Lua script per (hour, tenant, name): HINCRBY of each count,
// the hash's expiry (the end of its hour plus usage.retention), its place in
// the tenant's index and the tenants' index (pruned to the retention there
// too). The script is exactly-once per relay and batch (pending_usage.hpp).
// While Redis is away counts wait in memory (at most max_pending_keys keys;
// beyond that new keys are dropped, counted and logged) and go when it is
// back. What a relay counted since its last flush is lost if it dies.
//
// Metrics: relay_usage_flushes_total{outcome=ok|failed},
// relay_usage_pending_keys, relay_usage_dropped_keys_total.
//
// Runs on the Redis client's strand; call start(), stop() and flush() from
// the thread that runs its io_context (the relay's io thread); report_to()
// from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "cluster/redis_client.hpp"
#include "cluster/redis_script.hpp"
#include "core/asio.hpp"
#include "observe/metrics.hpp"
#include "usage/pending_usage.hpp"
#include "usage/usage_recorder.hpp"
#include "usage/usage_report.hpp"
#include "usage/usage_source.hpp"

namespace tunnel::usage {

class redis_usage : public std::enable_shared_from_this<redis_usage> {
    struct private_tag {};

  public:
    using clock = std::chrono::system_clock;
    static constexpr std::size_t max_pending_keys = 100'000;
    static constexpr std::size_t keys_per_script = 500;  // keys read by one script call

    // `registry` must outlive this.
    [[nodiscard]] static std::shared_ptr<redis_usage> create(
        std::shared_ptr<usage_recorder> recorder, std::shared_ptr<cluster::redis_client> redis,
        std::string node, observe::metrics_registry& registry, std::string prefix = "tunnel:");
    redis_usage(private_tag, std::shared_ptr<usage_recorder> recorder,
                std::shared_ptr<cluster::redis_client> redis, std::string node,
                observe::metrics_registry& registry, std::string prefix);

    // Flushes every usage.flush_interval until stop().
    void start();
    // Stops flushing; then one last flush of everything counted, within
    // `timeout` (a graceful shutdown, after the drain).
    [[nodiscard]] asio::awaitable<void> stop(std::chrono::milliseconds timeout);

    // Takes what the recorder counted and adds it, with whatever waited, to
    // Redis. True when nothing is left waiting.
    [[nodiscard]] asio::awaitable<bool> flush(clock::time_point now);

    // The report of usage_report.hpp from the cluster's Redis: 503 when
    // Redis cannot be read.
    [[nodiscard]] asio::awaitable<usage_answer> report(usage_query q, std::int64_t now);
    // Runs report() on the strand and hands its answer to `deliver` (from
    // any thread).
    void report_to(usage_query q, std::int64_t now, std::function<void(usage_answer)> deliver);

    [[nodiscard]] std::size_t pending_keys() const noexcept { return pending_keys_; }
    [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_; }
    [[nodiscard]] std::uint64_t flushes() const noexcept { return flushes_; }
    [[nodiscard]] std::uint64_t flush_failures() const noexcept { return flush_failures_; }

  private:
    asio::awaitable<void> loop();
    asio::awaitable<void> answer(usage_query q, std::int64_t now,
                                 std::function<void(usage_answer)> deliver);
    asio::awaitable<core::result<bool>> send_flight(clock::time_point now);
    asio::awaitable<core::result<usage_snapshot>> load(const usage_query& q, std::int64_t now);
    asio::awaitable<core::result<std::vector<usage_key>>> indexed(const std::string& tenant,
                                                                  std::int64_t from,
                                                                  std::int64_t to);

    std::shared_ptr<usage_recorder> recorder_;
    std::shared_ptr<cluster::redis_client> redis_;
    std::string node_;
    std::string prefix_;
    observe::counter_family& flush_counter_;    // {outcome}
    observe::gauge_family& pending_gauge_;      // {}
    observe::counter_family& dropped_counter_;  // {}
    cluster::redis_script add_;
    cluster::redis_script read_;
    cluster::redis_script read_requests_;
    asio::steady_timer timer_;
    pending_usage pending_{max_pending_keys};  // on the strand
    bool flushing_ = false;
    bool stopped_ = false;
    bool failing_ = false;   // the last flush could not reach Redis (logged once)
    bool dropping_ = false;  // keys were dropped for the bound (logged once)
    std::atomic<std::size_t> pending_keys_{0};
    std::atomic<std::uint64_t> dropped_{0};
    std::atomic<std::uint64_t> flushes_{0};
    std::atomic<std::uint64_t> flush_failures_{0};
};

}  // namespace tunnel::usage
