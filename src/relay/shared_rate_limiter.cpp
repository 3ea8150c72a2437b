#include "relay/shared_rate_limiter.hpp"

#include <algorithm>
#include <cmath>

#include <spdlog/spdlog.h>

namespace tunnel::relay {

namespace {

// Buckets unused this long go first when the table is full.
constexpr auto idle_entry = std::chrono::seconds(60);

std::chrono::milliseconds ceil_ms(double seconds) {
    return std::chrono::milliseconds(static_cast<long long>(std::ceil(seconds * 1000.0)));
}

}  // namespace

std::shared_ptr<shared_rate_limiter> shared_rate_limiter::create(fetcher fetch,
                                                                 std::function<bool()> shared_up,
                                                                 rate_source& fallback,
                                                                 const core::clock& clock,
                                                                 std::size_t max_keys) {
    return std::shared_ptr<shared_rate_limiter>(
        new shared_rate_limiter(std::move(fetch), std::move(shared_up), fallback, clock, max_keys));
}

shared_rate_limiter::shared_rate_limiter(fetcher fetch, std::function<bool()> shared_up,
                                         rate_source& fallback, const core::clock& clock,
                                         std::size_t max_keys)
    : fetch_(std::move(fetch)),
      shared_up_(std::move(shared_up)),
      fallback_(fallback),
      clock_(clock),
      max_keys_(std::max<std::size_t>(1, max_keys)) {}

long long shared_rate_limiter::batch_for(bucket_settings settings) noexcept {
    const double b = std::min(settings.rate * 0.1, settings.burst / 4.0);
    if (!std::isfinite(b) || b <= 1) return 1;
    return std::min<long long>(1000, static_cast<long long>(std::ceil(b)));
}

void shared_rate_limiter::note_fallback(bool local) {
    if (local_.exchange(local) == local) return;
    if (local)
        spdlog::warn(
            "cluster: Redis is away: rate limits are decided by this relay alone (each relay "
            "admits up to the full limit until Redis is back)");
    else
        spdlog::info("cluster: Redis is back: rate limits are shared again");
}

rate_decision shared_rate_limiter::acquire(std::string_view key, bucket_settings settings,
                                           double cost) {
    const bool up = shared_up_ && shared_up_();
    note_fallback(!up);
    if (!up) return fallback_.acquire(key, settings, cost);
    settings.rate = std::max(settings.rate, 1e-9);
    settings.burst = std::max(settings.burst, 1.0);
    const auto now = clock_.now();
    const long long batch = batch_for(settings);
    rate_decision d;
    std::string name(key);
    long long want = 0;
    {
        std::lock_guard lock(mutex_);
        auto it = entries_.find(name);
        if (it == entries_.end()) {
            if (entries_.size() >= max_keys_) make_room(now);
            it = entries_.emplace(name, entry{}).first;
        }
        auto& e = it->second;
        e.settings = settings;
        e.used = now;
        // Credit: up to one batch ahead of the grants, or a quarter of the
        // burst when that is more (a burst of requests, e.g. a queue let go,
        // is not refused while the first fetch is out), unless the shared
        // bucket said it is dry.
        const double credit_limit = std::max(static_cast<double>(batch), settings.burst / 4.0);
        const bool credit = now >= e.starved_until && e.balance - cost >= -credit_limit;
        if (e.balance >= cost || credit) {
            e.balance -= cost;
            d.allowed = true;
        } else {
            auto wait = ceil_ms((cost - e.balance) / settings.rate);
            if (e.starved_until > now)
                wait = std::max(
                    wait, std::chrono::ceil<std::chrono::milliseconds>(e.starved_until - now));
            d.retry_after = std::max(std::chrono::milliseconds(1), wait);
        }
        if (!e.fetching && now >= e.next_fetch && e.balance < static_cast<double>(batch) / 2) {
            e.fetching = true;
            want = std::max<long long>(
                1, static_cast<long long>(std::ceil(static_cast<double>(batch) - e.balance)));
        }
    }
    if (want > 0) {
        ++fetches_;
        std::weak_ptr<shared_rate_limiter> weak = weak_from_this();
        fetch_(name, settings, want, [weak, name, want](std::optional<grant> g) {
            if (auto self = weak.lock()) self->fetched(name, want, g);
        });
    }
    return d;
}

void shared_rate_limiter::fetched(const std::string& key, long long want, std::optional<grant> g) {
    const auto now = clock_.now();
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key);
    if (it == entries_.end()) return;  // dropped meanwhile
    auto& e = it->second;
    e.fetching = false;
    if (!g) {
        e.next_fetch = now + fetch_retry;
        return;
    }
    e.balance += static_cast<double>(std::max<long long>(0, g->granted));
    if (g->granted >= want) {
        e.starved_until = {};
        e.next_fetch = {};
        return;
    }
    // Dry: the bucket held less than asked. Nothing on credit, and no
    // fetch, until half a batch is back (at least until the token Redis
    // said): a relay kept short asks Redis about 20 times a second per key
    // at most, not once per token.
    const double half_batch = std::max(1.0, static_cast<double>(batch_for(e.settings)) / 2);
    auto dry = std::max(std::chrono::milliseconds(1), ceil_ms(half_batch / e.settings.rate));
    if (g->granted <= 0) dry = std::max(dry, g->retry_after);
    e.starved_until = now + dry;
    e.next_fetch = e.starved_until;
}

void shared_rate_limiter::make_room(time_point now) {
    std::erase_if(entries_, [now](const auto& kv) {
        return !kv.second.fetching && now - kv.second.used > idle_entry;
    });
    if (entries_.size() < max_keys_) return;
    auto oldest = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
        if (!it->second.fetching &&
            (oldest == entries_.end() || it->second.used < oldest->second.used))
            oldest = it;
    if (oldest != entries_.end()) entries_.erase(oldest);
}

double shared_rate_limiter::balance(std::string_view key) const {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(std::string(key));
    return it == entries_.end() ? 0.0 : it->second.balance;
}

std::size_t shared_rate_limiter::size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
}

}  // namespace tunnel::relay
