#include "relay/body_rate.hpp"

#include <algorithm>

namespace tunnel::relay {

body_rate::body_rate(double min_rate, std::chrono::milliseconds grace)
    : min_rate_(min_rate), grace_(std::chrono::duration<double>(grace).count()), credit_(grace_) {}

void body_rate::record(duration waited, std::size_t bytes) {
    if (!enabled()) return;
    credit_ -= std::chrono::duration<double>(waited).count();
    credit_ = std::min(grace_, credit_ + static_cast<double>(bytes) / min_rate_);
}

body_rate::duration body_rate::budget() const {
    if (!enabled()) return duration::max();
    if (credit_ <= 0) return duration::zero();
    return std::chrono::duration_cast<duration>(std::chrono::duration<double>(credit_));
}

}  // namespace tunnel::relay
