// Counts usage in memory and writes it to the usage_store off the hot path
// (docs/relay.md "Usage analytics"). Requests are counted in one shard per
// relay worker: a worker takes only its own shard's mutex, which nobody else
// takes except the flusher for the moment it swaps the shard's map out, so
// workers never wait on each other or on SQLite. Names' published time is
// kept as open intervals (attach and detach are rare) and credited, split at
// hour boundaries, at every flush.
//
// The flusher is a thread of its own, not work on an io_context: the relay
// still stops by letting run() return; stop() (or the destructor) writes what
// is left and joins it.
//
// In a cluster (docs/cluster.md "Usage analytics") the recorder has no
// database: redis_usage takes() what was counted and adds it to Redis.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "usage/usage_config.hpp"
#include "usage/usage_store.hpp"

namespace tunnel::usage {

// Keys (tenant, name, hour) a shard holds between flushes; past it new keys
// are dropped (and counted) until the next flush.
inline constexpr std::size_t max_keys_per_shard = 65536;

class usage_recorder {
    struct private_tag {};

  public:
    using clock = std::chrono::system_clock;

    // Opens the database (creating it) with `shards` request shards (one per
    // relay worker). The flusher starts with start().
    [[nodiscard]] static core::result<std::shared_ptr<usage_recorder>> open(
        const usage_config& config, unsigned shards);

    // Without a database (a cluster): counts wait until someone take()s
    // them; start(), stop() and flush() do nothing.
    [[nodiscard]] static std::shared_ptr<usage_recorder> create_unstored(const usage_config& config,
                                                                         unsigned shards);

    usage_recorder(private_tag, usage_config config, std::optional<usage_store> store,
                   unsigned shards);
    usage_recorder(const usage_recorder&) = delete;
    usage_recorder& operator=(const usage_recorder&) = delete;
    ~usage_recorder();

    // One request that ended at `end` (hot path: the shard's mutex only).
    // `status` 0: no answer; latency is counted only for answered requests.
    void record_request(unsigned shard, std::string_view tenant, std::string_view name,
                        clock::time_point end, std::uint64_t bytes_in, std::uint64_t bytes_out,
                        int status, std::chrono::nanoseconds latency);
    // A name was published / unpublished (its published time is counted in between).
    void name_up(const std::string& tenant, const std::string& name, clock::time_point now);
    void name_down(const std::string& tenant, const std::string& name, clock::time_point now);

    // Starts the flusher thread (every config.flush_interval).
    void start();
    // Stops the flusher and writes what is left (names still published are
    // counted up to now). Idempotent.
    void stop();
    // Writes everything counted up to `now`, and deletes hours past the
    // retention. The flusher calls it; tests may too.
    [[nodiscard]] core::result<void> flush(clock::time_point now);
    // Everything counted up to `now` (names still published: up to now),
    // taken out of the recorder. Thread-safe.
    [[nodiscard]] usage_batch take(clock::time_point now);

    [[nodiscard]] const usage_config& config() const noexcept { return config_; }
    [[nodiscard]] std::uint64_t flushes() const noexcept { return flushes_; }
    [[nodiscard]] std::uint64_t flush_failures() const noexcept { return flush_failures_; }
    [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_; }

  private:
    struct shard {
        std::mutex mutex;
        usage_batch pending;
    };
    void run();

    usage_config config_;
    std::mutex store_mutex_;  // flush() from the flusher, stop() and tests
    std::optional<usage_store> store_;
    usage_batch retry_;  // a batch the database refused, tried again next time
    std::int64_t pruned_before_ = 0;
    std::vector<std::unique_ptr<shard>> shards_;
    std::mutex names_mutex_;
    std::map<std::pair<std::string, std::string>, clock::time_point> published_;
    usage_batch closed_;  // published time of names that went away since the last flush

    std::mutex run_mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    bool stopped_ = false;
    std::thread thread_;
    std::atomic<std::uint64_t> flushes_{0};
    std::atomic<std::uint64_t> flush_failures_{0};
    std::atomic<std::uint64_t> dropped_{0};
};

// Adds the published time [from, to) of (tenant, name) to `batch`, split at
// hour boundaries.
void add_published_time(usage_batch& batch, const std::string& tenant, const std::string& name,
                        usage_recorder::clock::time_point from,
                        usage_recorder::clock::time_point to);

}  // namespace tunnel::usage
