#include "cluster/shared_bucket.hpp"

#include <cmath>

#include <fmt/format.h>

#include "core/log_text.hpp"

namespace tunnel::cluster {

namespace {

// The bucket as it stands now (KEYS[1]; ARGV rate (tokens/s), burst, amount:
// the cost, or the most to grant), refilled since it was last touched.
constexpr const char* refill_lua = R"lua(
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local amount = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then tokens = burst; ts = now end
if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate / 1000) end
local wait = 0
)lua";

// take: `amount` tokens or none.
constexpr const char* take_lua = R"lua(
local allowed = 0
if tokens >= amount then
  tokens = tokens - amount
  allowed = 1
else
  wait = math.ceil((amount - tokens) * 1000 / rate)
end
)lua";

// take_up_to: as many whole tokens as there are, at most `amount`.
constexpr const char* take_up_to_lua = R"lua(
local granted = math.min(math.floor(tokens), amount)
tokens = tokens - granted
if granted == 0 then wait = math.ceil((1 - tokens) * 1000 / rate) end
)lua";

// Stores the bucket, which expires when it would be full again, and answers.
std::string bucket_script(const char* decide, const char* answer) {
    return fmt::format(
        "{}{}redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts', now)\n"
        "redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)\nreturn {}\n",
        refill_lua, decide, answer);
}

}  // namespace

shared_buckets::shared_buckets(std::shared_ptr<redis_client> redis, std::string prefix)
    : redis_(std::move(redis)),
      prefix_(std::move(prefix)),
      take_("bucket take", bucket_script(take_lua, "{allowed, wait, math.floor(tokens)}")),
      take_up_to_("bucket take up to", bucket_script(take_up_to_lua, "{granted, wait}")) {}

asio::awaitable<core::result<reply>> shared_buckets::run(const redis_script& script,
                                                         std::string key, double rate, double burst,
                                                         double amount) {
    if (key.empty() || key.size() > 200)
        co_return core::fail(core::errc::invalid_argument, "a bucket key is 1-200 bytes");
    if (!std::isfinite(rate) || !std::isfinite(burst) || !std::isfinite(amount) || rate <= 0 ||
        burst <= 0 || amount < 0)
        co_return core::fail(core::errc::invalid_argument,
                             fmt::format("bucket {}: rate and burst must be > 0 and cost >= 0",
                                         core::log_text(key, 64)));
    std::vector<std::string> keys{prefix_ + "bucket:" + key};
    std::vector<std::string> args{fmt::format("{}", rate), fmt::format("{}", burst),
                                  fmt::format("{}", amount)};
    auto op = script.run(*redis_, std::move(keys), std::move(args));
    auto r = co_await std::move(op);
    if (!r) co_return tl::unexpected(r.error());
    co_return std::move(*r);
}

asio::awaitable<core::result<bucket_decision>> shared_buckets::take(std::string key, double rate,
                                                                    double burst, double cost) {
    const std::string name = core::log_text(key, 64);
    auto op = run(take_, std::move(key), rate, burst, cost);
    auto r = co_await std::move(op);
    if (!r) co_return tl::unexpected(r.error());
    if (!r->is_array() || r->elements.size() != 3 || !r->elements[0].is_integer())
        co_return core::fail(core::errc::protocol_error,
                             fmt::format("bucket {}: unexpected reply {}", name, describe(*r)));
    bucket_decision d;
    d.allowed = r->elements[0].integer == 1;
    d.retry_after = std::chrono::milliseconds(r->elements[1].integer);
    d.tokens_left = r->elements[2].integer;
    co_return d;
}

asio::awaitable<core::result<bucket_grant>> shared_buckets::take_up_to(std::string key, double rate,
                                                                       double burst,
                                                                       long long max) {
    const std::string name = core::log_text(key, 64);
    auto op = run(take_up_to_, std::move(key), rate, burst, static_cast<double>(max));
    auto r = co_await std::move(op);
    if (!r) co_return tl::unexpected(r.error());
    if (!r->is_array() || r->elements.size() != 2 || !r->elements[0].is_integer() ||
        !r->elements[1].is_integer())
        co_return core::fail(core::errc::protocol_error,
                             fmt::format("bucket {}: unexpected reply {}", name, describe(*r)));
    co_return bucket_grant{r->elements[0].integer,
                           std::chrono::milliseconds(r->elements[1].integer)};
}

}  // namespace tunnel::cluster
