#include "cluster/shared_bucket.hpp"

#include <cmath>

#include <fmt/format.h>

#include "core/log_text.hpp"

namespace tunnel::cluster {

namespace {

// KEYS[1] bucket; ARGV rate (tokens/s), burst, cost.
constexpr const char* take_lua = R"lua(
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then tokens = burst; ts = now end
if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate / 1000) end
local allowed = 0
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait = math.ceil((cost - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, wait, math.floor(tokens)}
)lua";

}  // namespace

shared_buckets::shared_buckets(std::shared_ptr<redis_client> redis, std::string prefix)
    : redis_(std::move(redis)), prefix_(std::move(prefix)), take_("bucket take", take_lua) {}

asio::awaitable<core::result<bucket_decision>> shared_buckets::take(std::string key, double rate,
                                                                    double burst, double cost) {
    if (key.empty() || key.size() > 200)
        co_return core::fail(core::errc::invalid_argument, "a bucket key is 1-200 bytes");
    if (!std::isfinite(rate) || !std::isfinite(burst) || !std::isfinite(cost) || rate <= 0 ||
        burst <= 0 || cost < 0)
        co_return core::fail(core::errc::invalid_argument,
                             fmt::format("bucket {}: rate and burst must be > 0 and cost >= 0",
                                         core::log_text(key, 64)));
    std::vector<std::string> keys{prefix_ + "bucket:" + key};
    std::vector<std::string> args{fmt::format("{}", rate), fmt::format("{}", burst),
                                  fmt::format("{}", cost)};
    auto op = take_.run(*redis_, std::move(keys), std::move(args));
    auto r = co_await std::move(op);
    if (!r) co_return tl::unexpected(r.error());
    if (!r->is_array() || r->elements.size() != 3 || !r->elements[0].is_integer())
        co_return core::fail(
            core::errc::protocol_error,
            fmt::format("bucket {}: unexpected reply {}", core::log_text(key, 64), describe(*r)));
    bucket_decision d;
    d.allowed = r->elements[0].integer == 1;
    d.retry_after = std::chrono::milliseconds(r->elements[1].integer);
    d.tokens_left = r->elements[2].integer;
    co_return d;
}

}  // namespace tunnel::cluster
