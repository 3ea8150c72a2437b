#include "usage/usage_recorder.hpp"

#include <pthread.h>

#include <algorithm>

#include <spdlog/spdlog.h>

namespace tunnel::usage {

namespace {

using ms = std::chrono::milliseconds;

std::int64_t unix_ms(usage_recorder::clock::time_point t) {
    return std::chrono::duration_cast<ms>(t.time_since_epoch()).count();
}

}  // namespace

void add_published_time(usage_batch& batch, const std::string& tenant, const std::string& name,
                        usage_recorder::clock::time_point from,
                        usage_recorder::clock::time_point to) {
    std::int64_t a = unix_ms(from);
    const std::int64_t b = unix_ms(to);
    while (a < b) {
        const std::int64_t hour = hour_of(a / 1000);
        const std::int64_t end = std::min(b, (hour + seconds_per_hour) * 1000);
        batch[usage_key{tenant, name, hour}].tunnel_ms += static_cast<std::uint64_t>(end - a);
        a = end;
    }
}

core::result<std::shared_ptr<usage_recorder>> usage_recorder::open(const usage_config& config,
                                                                   unsigned shards) {
    auto store = usage_store::open(config.database);
    if (!store)
        return core::fail(store.error().code,
                          fmt::format("usage.database: {}", store.error().message));
    return std::make_shared<usage_recorder>(private_tag{}, config, std::move(*store),
                                            std::max(1u, shards));
}

std::shared_ptr<usage_recorder> usage_recorder::create_unstored(const usage_config& config,
                                                                unsigned shards) {
    return std::make_shared<usage_recorder>(private_tag{}, config, std::nullopt,
                                            std::max(1u, shards));
}

usage_recorder::usage_recorder(private_tag, usage_config config, std::optional<usage_store> store,
                               unsigned shards)
    : config_(std::move(config)), store_(std::move(store)) {
    for (unsigned i = 0; i < shards; ++i) shards_.push_back(std::make_unique<shard>());
}

usage_recorder::~usage_recorder() {
    stop();
}

void usage_recorder::record_request(unsigned shard_index, std::string_view tenant,
                                    std::string_view name, clock::time_point end,
                                    std::uint64_t bytes_in, std::uint64_t bytes_out, int status,
                                    std::chrono::nanoseconds latency) {
    auto& s = *shards_[shard_index % shards_.size()];
    usage_key key{
        std::string(tenant), std::string(name),
        hour_of(std::chrono::duration_cast<std::chrono::seconds>(end.time_since_epoch()).count())};
    std::lock_guard lock(s.mutex);
    auto it = s.pending.find(key);
    if (it == s.pending.end()) {
        if (s.pending.size() >= max_keys_per_shard) {
            ++dropped_;
            return;
        }
        it = s.pending.emplace(std::move(key), usage_counts{}).first;
    }
    auto& c = it->second;
    ++c.requests;
    c.bytes_in += bytes_in;
    c.bytes_out += bytes_out;
    if (status >= 500) ++c.errors;
    if (status > 0) ++c.latency[latency_bucket(latency)];
}

void usage_recorder::name_up(const std::string& tenant, const std::string& name,
                             clock::time_point now) {
    std::lock_guard lock(names_mutex_);
    published_.try_emplace({tenant, name}, now);  // already published (a lease takeover): kept
}

void usage_recorder::name_down(const std::string& tenant, const std::string& name,
                               clock::time_point now) {
    std::lock_guard lock(names_mutex_);
    const auto it = published_.find({tenant, name});
    if (it == published_.end()) return;
    add_published_time(closed_, tenant, name, it->second, std::max(now, it->second));
    published_.erase(it);
}

void usage_recorder::start() {
    std::lock_guard lock(run_mutex_);
    if (thread_.joinable() || stopping_ || !store_) return;
    thread_ = std::thread([this] {
        ::pthread_setname_np(::pthread_self(), "usage-flush");
        run();
    });
}

void usage_recorder::run() {
    std::unique_lock lock(run_mutex_);
    while (!stopping_) {
        wake_.wait_for(lock, config_.flush_interval, [this] { return stopping_; });
        if (stopping_) break;
        lock.unlock();
        if (auto r = flush(clock::now()); !r)
            spdlog::warn(
                "usage analytics: cannot write to {}: {} (kept in memory, tried again "
                "in {} ms)",
                config_.database, r.error().message, config_.flush_interval.count());
        lock.lock();
    }
}

void usage_recorder::stop() {
    {
        std::lock_guard lock(run_mutex_);
        if (stopped_) return;
        stopped_ = true;
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (!store_) return;
    if (auto r = flush(clock::now()); !r)
        spdlog::error("usage analytics: the last counts could not be written to {}: {}",
                      config_.database, r.error().message);
}

usage_batch usage_recorder::take(clock::time_point now) {
    usage_batch batch;
    for (auto& s : shards_) {
        usage_batch taken;
        {
            std::lock_guard lock(s->mutex);
            taken.swap(s->pending);
        }
        for (auto& [key, c] : taken) batch[key].merge(c);
    }
    std::lock_guard lock(names_mutex_);
    for (auto& [key, c] : closed_) batch[key].merge(c);
    closed_.clear();
    for (auto& [key, since] : published_) {
        if (now <= since) continue;
        add_published_time(batch, key.first, key.second, since, now);
        since = now;
    }
    return batch;
}

core::result<void> usage_recorder::flush(clock::time_point now) {
    std::lock_guard store_lock(store_mutex_);
    if (!store_) return {};
    usage_batch batch = std::move(retry_);
    retry_.clear();
    for (auto& [key, c] : take(now)) batch[key].merge(c);
    if (auto r = store_->add(batch); !r) {
        ++flush_failures_;
        // Kept for the next flush, within the same bound as a shard.
        if (batch.size() <= max_keys_per_shard)
            retry_ = std::move(batch);
        else
            dropped_ += batch.size();
        return r;
    }
    ++flushes_;
    const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch());
    const std::int64_t cutoff =
        hour_of(now_s.count() -
                std::chrono::duration_cast<std::chrono::seconds>(config_.retention).count());
    if (cutoff > pruned_before_) {
        auto pruned = store_->prune(cutoff);
        if (!pruned) return tl::unexpected(pruned.error());
        pruned_before_ = cutoff;
        if (*pruned > 0)
            spdlog::info("usage analytics: deleted {} hourly rows older than the retention ({}h)",
                         *pruned, config_.retention.count());
    }
    return {};
}

}  // namespace tunnel::usage
