#include "core/backoff.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <random>

namespace tunnel::core {

result<void> validate(const backoff_policy& policy) {
    if (policy.base <= std::chrono::milliseconds::zero()) {
        return fail(errc::invalid_argument, "backoff base: must be > 0");
    }
    if (policy.cap < policy.base) {
        return fail(errc::invalid_argument, "backoff cap: must be >= base");
    }
    return {};
}

std::chrono::milliseconds backoff_ceiling(const backoff_policy& policy, unsigned attempt) noexcept {
    using rep = std::chrono::milliseconds::rep;
    const rep base = policy.base.count();
    const rep cap = policy.cap.count();
    if (base <= 0 || cap <= 0) return std::chrono::milliseconds::zero();
    // base * 2^attempt <= cap  <=>  base <= cap / 2^attempt (integer division).
    if (attempt >= static_cast<unsigned>(std::numeric_limits<rep>::digits) ||
        base > (cap >> attempt)) {
        return policy.cap;
    }
    return std::chrono::milliseconds(base << attempt);
}

random_source default_random_source() {
    auto engine = std::make_shared<std::mt19937_64>(std::random_device{}());
    return [engine]() { return std::generate_canonical<double, 53>(*engine); };
}

backoff::backoff(backoff_policy policy, random_source random)
    : policy_(policy), random_(random ? std::move(random) : default_random_source()) {}

std::chrono::milliseconds backoff::delay(unsigned attempt) {
    const auto ceiling = backoff_ceiling(policy_, attempt).count();
    if (ceiling <= 0) return std::chrono::milliseconds::zero();
    double r = random_();
    if (!(r >= 0.0)) r = 0.0;  // also catches NaN
    if (r >= 1.0) r = std::nextafter(1.0, 0.0);
    // floor(r * (ceiling + 1)) is uniform over 0..ceiling. Doubles lose
    // precision above 2^53 ms (285,000 years), so clamp anyway.
    const long double scaled =
        static_cast<long double>(r) * (static_cast<long double>(ceiling) + 1);
    const auto picked = scaled >= static_cast<long double>(ceiling)
                            ? ceiling
                            : static_cast<std::chrono::milliseconds::rep>(scaled);
    return std::chrono::milliseconds(
        std::clamp<std::chrono::milliseconds::rep>(picked, 0, ceiling));
}

std::optional<std::chrono::milliseconds> backoff::next() {
    const unsigned attempt = failures_;
    if (failures_ < std::numeric_limits<unsigned>::max()) ++failures_;
    // failures_ attempts have now been made; one more is allowed only if
    // that stays within max_attempts.
    if (policy_.max_attempts != 0 && failures_ >= policy_.max_attempts) return std::nullopt;
    return delay(attempt);
}

}  // namespace tunnel::core
