#include "usage/pending_usage.hpp"

#include <algorithm>

namespace tunnel::usage {

std::size_t pending_usage::add(const usage_batch& batch) {
    std::size_t dropped = 0;
    for (const auto& [key, counts] : batch) {
        if (counts.empty()) continue;
        if (auto it = waiting_.find(key); it != waiting_.end()) {
            it->second.merge(counts);
            continue;
        }
        if (keys() >= max_keys_) {
            ++dropped;
            continue;
        }
        waiting_.emplace(key, counts);
    }
    dropped_ += dropped;
    return dropped;
}

pending_usage::flight& pending_usage::in_flight(std::uint64_t next_seq) {
    if (flight_.batch.empty() && !waiting_.empty()) {
        flight_.seq = std::max(next_seq, last_seq_ + 1);
        last_seq_ = flight_.seq;
        flight_.batch.swap(waiting_);
    }
    return flight_;
}

void pending_usage::delivered(const usage_key& key) {
    flight_.batch.erase(key);
}

}  // namespace tunnel::usage
