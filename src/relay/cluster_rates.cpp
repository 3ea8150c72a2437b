#include "relay/cluster_rates.hpp"

#include <spdlog/spdlog.h>

#include "cluster/shared_bucket.hpp"
#include "core/log_text.hpp"
#include "core/spawn.hpp"
#include "relay/relay_state.hpp"

namespace tunnel::relay {

namespace {

asio::awaitable<void> fetch_batch(std::weak_ptr<relay_state> weak,
                                  std::shared_ptr<cluster::shared_buckets> buckets, std::string key,
                                  bucket_settings settings, long long want,
                                  shared_rate_limiter::fetch_done done) {
    auto op = buckets->take_up_to(key, settings.rate, settings.burst, want);
    auto r = co_await std::move(op);
    const auto st = weak.lock();
    if (!r) {
        spdlog::debug("cluster: rate-limit batch for {} not fetched: {}", core::log_text(key, 64),
                      r.error().message);
        if (st) st->metrics.cluster_rates.with({"failed"}).inc();
        done(std::nullopt);
        co_return;
    }
    if (st) st->metrics.cluster_rates.with({r->granted >= want ? "fetched" : "short"}).inc();
    done(shared_rate_limiter::grant{r->granted, r->retry_after});
}

}  // namespace

std::shared_ptr<shared_rate_limiter> make_cluster_rates(
    const std::shared_ptr<relay_state>& state, std::shared_ptr<cluster::redis_client> commands) {
    std::weak_ptr<relay_state> weak = state;
    auto buckets = std::make_shared<cluster::shared_buckets>(commands);
    auto fetch = [weak, buckets](const std::string& key, bucket_settings settings, long long want,
                                 shared_rate_limiter::fetch_done done) {
        auto st = weak.lock();
        if (!st) return done(std::nullopt);
        core::spawn(st->io, fetch_batch(weak, buckets, key, settings, want, std::move(done)),
                    "cluster rate-limit fetch");
    };
    auto shared_up = [weak, commands] {
        if (commands->connected()) return true;
        if (auto st = weak.lock()) st->metrics.cluster_rates.with({"local"}).inc();
        return false;
    };
    return shared_rate_limiter::create(std::move(fetch), std::move(shared_up), state->limiter);
}

}  // namespace tunnel::relay
