#include "relay/refusal_throttle.hpp"

#include <algorithm>

namespace tunnel::relay {

long long refusal_throttle::verdict::retry_after_seconds() const noexcept {
    return std::max<long long>(1, (retry_after.count() + 999) / 1000);
}

refusal_throttle::refusal_throttle(throttle_settings settings, std::size_t max_sources,
                                   const core::clock& clock)
    : settings_(settings), max_sources_(std::max<std::size_t>(1, max_sources)), clock_(clock) {
    settings_.max_refusals = std::max(1u, settings_.max_refusals);
}

bool refusal_throttle::ended(const entry& e, core::clock::time_point now) const {
    return now >= e.started + settings_.window;
}

refusal_throttle::verdict refusal_throttle::check(const std::string& source) {
    std::lock_guard lock(mutex_);
    const auto now = clock_.now();
    auto it = sources_.find(source);
    if (it == sources_.end() || ended(it->second, now) ||
        it->second.refusals < settings_.max_refusals)
        return {};
    ++it->second.suppressed;
    return {true, std::chrono::duration_cast<std::chrono::milliseconds>(it->second.started +
                                                                        settings_.window - now)};
}

bool refusal_throttle::record_refusal(const std::string& source) {
    std::lock_guard lock(mutex_);
    const auto now = clock_.now();
    auto it = sources_.find(source);
    if (it != sources_.end() && ended(it->second, now)) {
        if (it->second.suppressed > 0)
            pending_.push_back(
                {it->first, it->second.refusals, it->second.suppressed, settings_.window});
        sources_.erase(it);
        it = sources_.end();
    }
    if (it == sources_.end()) {
        make_room(now);
        it = sources_.emplace(source, entry{now}).first;
    }
    return ++it->second.refusals == settings_.max_refusals;
}

void refusal_throttle::make_room(core::clock::time_point now) {
    if (sources_.size() < max_sources_) return;
    for (auto it = sources_.begin(); it != sources_.end();) {
        if (ended(it->second, now)) {
            if (it->second.suppressed > 0)
                pending_.push_back(
                    {it->first, it->second.refusals, it->second.suppressed, settings_.window});
            it = sources_.erase(it);
        } else {
            ++it;
        }
    }
    while (sources_.size() >= max_sources_) {
        auto oldest = std::min_element(sources_.begin(), sources_.end(), [](auto& a, auto& b) {
            return a.second.started < b.second.started;
        });
        if (oldest->second.suppressed > 0)
            pending_.push_back({oldest->first, oldest->second.refusals, oldest->second.suppressed,
                                settings_.window});
        sources_.erase(oldest);
    }
}

std::vector<refusal_throttle::summary> refusal_throttle::take_ended() {
    std::lock_guard lock(mutex_);
    const auto now = clock_.now();
    std::vector<summary> out = std::move(pending_);
    pending_.clear();
    for (auto it = sources_.begin(); it != sources_.end();) {
        if (ended(it->second, now)) {
            if (it->second.suppressed > 0)
                out.push_back(
                    {it->first, it->second.refusals, it->second.suppressed, settings_.window});
            it = sources_.erase(it);
        } else {
            ++it;
        }
    }
    return out;
}

std::vector<refusal_throttle::summary> refusal_throttle::take_all() {
    std::lock_guard lock(mutex_);
    std::vector<summary> out = std::move(pending_);
    pending_.clear();
    for (auto& [source, e] : sources_)
        if (e.suppressed > 0) out.push_back({source, e.refusals, e.suppressed, settings_.window});
    sources_.clear();
    return out;
}

}  // namespace tunnel::relay
