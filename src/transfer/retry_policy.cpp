#include "transfer/retry_policy.hpp"

#include <charconv>

#include <fmt/format.h>

namespace tunnel::transfer {

core::result<unsigned> parse_retries(std::string_view text) {
    unsigned value = 0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    const bool digits_only = !text.empty() && ptr == end && ec == std::errc{};
    if (!digits_only || value > max_retries) {
        std::string why = "expected a whole number of reconnects";
        if (!text.empty() && text.front() == '-') why = "it cannot be negative";
        if (digits_only || ec == std::errc::result_out_of_range) why = "that is too many";
        return core::fail(
            core::errc::invalid_argument,
            fmt::format(
                "--retries \"{}\": {}; give a number from 0 (no retries, the default) to {}", text,
                why, max_retries));
    }
    return value;
}

bool connection_lost(const core::error& e) noexcept {
    switch (e.code) {
        case core::errc::disconnected:
        case core::errc::connection_failed:
        case core::errc::timeout:
        case core::errc::auth_unavailable:
            return true;
        default:
            return false;
    }
}

core::backoff_policy default_retry_backoff() noexcept {
    return {std::chrono::seconds(1), std::chrono::seconds(30), 0};
}

std::string describe(const retry_event& e) {
    return fmt::format("{}, retry {}/{} in {:.1f}s: {}",
                       e.connected ? "connection lost" : "cannot reconnect", e.retry, e.retries,
                       static_cast<double>(e.delay.count()) / 1000.0, e.cause.message);
}

std::string lost_connection_advice(unsigned retries, bool ever_connected) {
    if (!ever_connected)
        return fmt::format("could not connect in {} attempts (--retries {})", retries + 1, retries);
    const char* resume = "run the same command with --resume to continue from what was copied";
    if (retries == 0)
        return fmt::format(
            "connection lost: {}, or add --retries N to reconnect and resume by itself", resume);
    return fmt::format("connection lost {} times, gave up after {} {} (--retries {}): {}",
                       retries + 1, retries, retries == 1 ? "retry" : "retries", retries, resume);
}

retry_schedule::retry_schedule(unsigned retries, core::backoff_policy policy,
                               core::random_source random)
    : retries_(retries),
      backoff_(
          [&] {
              policy.max_attempts = 0;  // the budget is ours: the backoff only sizes the delays
              return policy;
          }(),
          std::move(random)) {}

std::optional<std::chrono::milliseconds> retry_schedule::next(bool progressed) {
    if (used_ >= retries_) return std::nullopt;
    ++used_;
    if (progressed) backoff_.reset();
    return backoff_.next();
}

}  // namespace tunnel::transfer
