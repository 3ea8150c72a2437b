#include "relay/rate_limiter.hpp"

#include <algorithm>
#include <cmath>

namespace tunnel::relay {

long long rate_decision::retry_after_seconds() const noexcept {
    if (allowed) return 0;
    auto s = (retry_after.count() + 999) / 1000;
    return std::max<long long>(1, s);
}

rate_limiter::rate_limiter(std::size_t max_keys, const core::clock& clock)
    : max_keys_(std::max<std::size_t>(1, max_keys)), clock_(clock) {}

void rate_limiter::refill(bucket& b, core::clock::time_point now) const {
    if (now > b.updated) {
        std::chrono::duration<double> dt = now - b.updated;
        b.tokens = std::min(b.settings.burst, b.tokens + dt.count() * b.settings.rate);
        b.updated = now;
    }
}

void rate_limiter::make_room(core::clock::time_point now) {
    // Full buckets first: forgetting them changes nothing.
    for (auto it = lru_.rbegin(); it != lru_.rend() && buckets_.size() >= max_keys_;) {
        auto found = buckets_.find(*it);
        refill(found->second, now);
        if (found->second.tokens >= found->second.settings.burst) {
            auto victim = std::next(it).base();
            it = std::make_reverse_iterator(lru_.erase(victim));
            buckets_.erase(found);
        } else {
            ++it;
        }
    }
    while (buckets_.size() >= max_keys_ && !lru_.empty()) {
        buckets_.erase(lru_.back());
        lru_.pop_back();
        ++evictions_;
    }
}

rate_decision rate_limiter::acquire(std::string_view key, bucket_settings settings, double cost) {
    settings.rate = std::max(settings.rate, 1e-9);
    settings.burst = std::max(settings.burst, 1.0);
    const auto now = clock_.now();
    std::lock_guard lock(mutex_);
    auto it = buckets_.find(std::string(key));
    if (it == buckets_.end()) {
        if (buckets_.size() >= max_keys_) make_room(now);
        lru_.emplace_front(key);
        it = buckets_.emplace(std::string(key), bucket{settings.burst, now, settings, lru_.begin()})
                 .first;
    } else {
        lru_.splice(lru_.begin(), lru_, it->second.lru);
        auto& held = it->second;
        refill(held, now);
        // A changed limit (a config reload) applies from now on: a raised
        // burst adds its extra capacity at once, a lowered one caps what is held.
        if (settings.burst > held.settings.burst)
            held.tokens += settings.burst - held.settings.burst;
        held.settings = settings;
        held.tokens = std::min(held.tokens, settings.burst);
    }
    auto& b = it->second;
    if (b.tokens >= cost) {
        b.tokens -= cost;
        return {true, std::chrono::milliseconds(0)};
    }
    const double missing = std::min(cost, settings.burst) - b.tokens;
    const auto wait_ms = static_cast<long long>(std::ceil(missing / settings.rate * 1000.0));
    return {false, std::chrono::milliseconds(std::max<long long>(1, wait_ms))};
}

std::size_t rate_limiter::size() const {
    std::lock_guard lock(mutex_);
    return buckets_.size();
}

std::size_t rate_limiter::evictions() const {
    std::lock_guard lock(mutex_);
    return evictions_;
}

}  // namespace tunnel::relay
