#include "usage/redis_usage.hpp"

#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "core/spawn.hpp"
#include "core/utc_time.hpp"
#include "usage/redis_usage_keys.hpp"

namespace tunnel::usage {

namespace {

// KEYS: the hour's hash, the tenant's index, the tenants' index.
// ARGV: seq field, seq, expire-at (unix s), hour, index member, tenant,
// cutoff hour (older index entries go), now (unix s), then field, count,
// field, count... A hash that has this relay's seq already has the batch:
// 0, nothing added. Redis 6.2 or later (ZADD GT).
constexpr const char* add_source = R"lua(
local last = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if last >= tonumber(ARGV[2]) then return 0 end
for i = 9, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIREAT', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[7])
local ttl = redis.call('TTL', KEYS[2])
if ttl < 0 or tonumber(ARGV[8]) + ttl < tonumber(ARGV[3]) then
  redis.call('EXPIREAT', KEYS[2], ARGV[3])
end
redis.call('ZADD', KEYS[3], 'GT', ARGV[4], ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[7])
return 1
)lua";

// Every field of each hash (an empty list for one that expired).
constexpr const char* read_source = R"lua(
local out = {}
for i, k in ipairs(KEYS) do out[i] = redis.call('HGETALL', k) end
return out
)lua";

// The requests of each hash ('' for one that expired).
constexpr const char* read_requests_source = R"lua(
local out = {}
for i, k in ipairs(KEYS) do out[i] = redis.call('HGET', k, 'requests') or '' end
return out
)lua";

usage_answer redis_failure(const std::string& message) {
    return {503, "application/json",
            nlohmann::json{{"error", "usage_store"},
                           {"message", fmt::format("the cluster's Redis cannot be read: {}; usage "
                                                   "counted meanwhile waits on each relay",
                                                   message)}}
                    .dump() +
                "\n"};
}

std::vector<std::string> strings_of(const cluster::reply& r) {
    std::vector<std::string> out;
    for (const auto& e : r.elements) out.push_back(e.text);
    return out;
}

}  // namespace

std::shared_ptr<redis_usage> redis_usage::create(std::shared_ptr<usage_recorder> recorder,
                                                 std::shared_ptr<cluster::redis_client> redis,
                                                 std::string node,
                                                 observe::metrics_registry& registry,
                                                 std::string prefix) {
    return std::make_shared<redis_usage>(private_tag{}, std::move(recorder), std::move(redis),
                                         std::move(node), registry, std::move(prefix));
}

redis_usage::redis_usage(private_tag, std::shared_ptr<usage_recorder> recorder,
                         std::shared_ptr<cluster::redis_client> redis, std::string node,
                         observe::metrics_registry& registry, std::string prefix)
    : recorder_(std::move(recorder)),
      redis_(std::move(redis)),
      node_(std::move(node)),
      prefix_(std::move(prefix)),
      flush_counter_(registry.counter("relay_usage_flushes_total",
                                      "Usage analytics flushes to the cluster's Redis, by "
                                      "outcome (ok, failed: the counts wait in memory).",
                                      {"outcome"})),
      pending_gauge_(registry.gauge("relay_usage_pending_keys",
                                    "Hour-and-name usage keys waiting to be added to Redis.")),
      dropped_counter_(registry.counter("relay_usage_dropped_keys_total",
                                        "Hour-and-name usage keys dropped: too many waited for "
                                        "Redis.")),
      add_("usage add", add_source),
      read_("usage read", read_source),
      read_requests_("usage read requests", read_requests_source),
      timer_(redis_->strand()) {}

void redis_usage::start() {
    core::spawn(
        redis_->strand(), [self = shared_from_this()] { return self->loop(); },
        "usage analytics flush to redis");
}

asio::awaitable<void> redis_usage::loop() {
    auto self = shared_from_this();
    while (!stopped_) {
        timer_.expires_after(recorder_->config().flush_interval);
        boost::system::error_code ec;
        co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        if (stopped_) break;
        if (flushing_) continue;
        auto flushed = flush(clock::now());
        (void)co_await std::move(flushed);
    }
}

asio::awaitable<void> redis_usage::stop(std::chrono::milliseconds timeout) {
    stopped_ = true;
    timer_.cancel();
    const auto until = std::chrono::steady_clock::now() + timeout;
    asio::steady_timer wait(redis_->strand());
    while (flushing_ && std::chrono::steady_clock::now() < until) {
        wait.expires_after(std::chrono::milliseconds(10));
        boost::system::error_code ec;
        co_await wait.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    if (flushing_) co_return;
    auto flushed = flush(clock::now());
    if (!co_await std::move(flushed))
        spdlog::warn(
            "usage analytics: {} hourly keys could not be added to Redis before the relay "
            "stopped: they are lost",
            pending_.keys());
}

asio::awaitable<bool> redis_usage::flush(clock::time_point now) {
    flushing_ = true;
    struct done_flushing {
        redis_usage& u;
        ~done_flushing() {
            u.flushing_ = false;
            u.pending_keys_ = u.pending_.keys();
            u.pending_gauge_.with({}).set(static_cast<double>(u.pending_.keys()));
        }
    } guard{*this};
    if (const auto dropped = pending_.add(recorder_->take(now)); dropped > 0) {
        if (!dropping_)  // once until the waiting keys are gone
            spdlog::warn(
                "usage analytics: {} hourly keys wait for Redis already (the most kept): the "
                "counts of {} new ones are dropped, and of later ones until Redis takes them",
                max_pending_keys, dropped);
        dropping_ = true;
        dropped_ += dropped;
        dropped_counter_.with({}).inc(static_cast<double>(dropped));
    }
    if (pending_.empty()) co_return true;
    core::result<bool> sent = false;
    if (!redis_->connected()) {
        sent = core::fail(core::errc::connection_failed, "not connected");
    } else {
        // The batch in flight, then (it went) what waited meanwhile.
        for (int round = 0; round < 2 && sent && !pending_.empty(); ++round) {
            auto one = send_flight(now);
            sent = co_await std::move(one);
        }
    }
    if (!sent) {
        ++flush_failures_;
        flush_counter_.with({"failed"}).inc();
        if (!failing_)
            spdlog::warn(
                "usage analytics: cannot add counts to Redis ({}): {} hourly keys wait in "
                "memory (at most {}) and go when it is back",
                sent.error().message, pending_.keys(), max_pending_keys);
        failing_ = true;
        co_return false;
    }
    ++flushes_;
    flush_counter_.with({"ok"}).inc();
    if (pending_.empty()) dropping_ = false;
    if (failing_ && pending_.empty()) {
        spdlog::info("usage analytics: Redis is back; the counts that waited were added");
        failing_ = false;
    }
    co_return pending_.empty();
}

asio::awaitable<core::result<bool>> redis_usage::send_flight(clock::time_point now) {
    const auto retention =
        std::chrono::duration_cast<std::chrono::seconds>(recorder_->config().retention).count();
    const std::int64_t cutoff = hour_of(core::unix_seconds(now) - retention);
    const auto now_ms = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count());
    auto& flight = pending_.in_flight(now_ms);
    std::vector<usage_key> keys;
    keys.reserve(flight.batch.size());
    for (const auto& [key, counts] : flight.batch) keys.push_back(key);
    const std::string seq_field = usage_seq_field(node_);
    const std::string seq = std::to_string(flight.seq);
    for (const auto& key : keys) {
        if (key.hour < cutoff) {  // past the retention already (a long outage)
            pending_.delivered(key);
            continue;
        }
        std::vector<std::string> args{seq_field,
                                      seq,
                                      std::to_string(key.hour + seconds_per_hour + retention),
                                      std::to_string(key.hour),
                                      usage_index_member(key),
                                      key.tenant,
                                      std::to_string(cutoff),
                                      std::to_string(core::unix_seconds(now))};
        for (auto& f : usage_fields(flight.batch.at(key))) args.push_back(std::move(f));
        auto run = add_.run(*redis_,
                            {usage_hash_key(prefix_, key), usage_index_key(prefix_, key.tenant),
                             usage_tenants_key(prefix_)},
                            std::move(args));
        auto r = co_await std::move(run);
        if (!r) co_return tl::unexpected(r.error());
        pending_.delivered(key);
    }
    co_return true;
}

void redis_usage::report_to(usage_query q, std::int64_t now,
                            std::function<void(usage_answer)> deliver) {
    core::spawn(
        redis_->strand(),
        [self = shared_from_this(), q = std::move(q), now, deliver = std::move(deliver)] {
            return self->answer(q, now, deliver);
        },
        "usage report from redis");
}

asio::awaitable<void> redis_usage::answer(usage_query q, std::int64_t now,
                                          std::function<void(usage_answer)> deliver) {
    auto self = shared_from_this();
    auto built = report(std::move(q), now);
    auto a = co_await std::move(built);
    deliver(std::move(a));
}

asio::awaitable<usage_answer> redis_usage::report(usage_query q, std::int64_t now) {
    auto loading = load(q, now);
    auto snapshot = co_await std::move(loading);
    if (!snapshot) co_return redis_failure(snapshot.error().message);
    co_return usage_report(*snapshot, q, now);
}

asio::awaitable<core::result<std::vector<usage_key>>> redis_usage::indexed(
    const std::string& tenant, std::int64_t from, std::int64_t to) {
    auto asked = redis_->command({"ZRANGEBYSCORE", usage_index_key(prefix_, tenant),
                                  std::to_string(from), fmt::format("({}", to)});
    auto r = co_await std::move(asked);
    if (!r) co_return tl::unexpected(r.error());
    if (r->is_error())
        co_return core::fail(core::errc::protocol_error, "ZRANGEBYSCORE: " + describe(*r));
    std::vector<usage_key> keys;
    for (const auto& member : r->elements)
        if (auto m = parse_usage_index_member(member.text))
            keys.push_back({tenant, std::move(m->second), m->first});
    co_return keys;
}

asio::awaitable<core::result<usage_snapshot>> redis_usage::load(const usage_query& q,
                                                                std::int64_t now) {
    std::vector<std::string> tenants;
    if (!q.tenant.empty()) {
        tenants.push_back(q.tenant);
    } else {
        auto asked = redis_->command(
            {"ZRANGEBYSCORE", usage_tenants_key(prefix_), std::to_string(hour_of(q.from)), "+inf"});
        auto r = co_await std::move(asked);
        if (!r) co_return tl::unexpected(r.error());
        if (r->is_error())
            co_return core::fail(core::errc::protocol_error, "ZRANGEBYSCORE: " + describe(*r));
        tenants = strings_of(*r);
    }
    std::vector<usage_key> keys;
    for (const auto& tenant : tenants) {
        auto listed = indexed(tenant, hour_of(q.from), q.to);
        auto found = co_await std::move(listed);
        if (!found) co_return tl::unexpected(found.error());
        keys.insert(keys.end(), found->begin(), found->end());
        if (keys.size() > max_report_rows) break;  // the report says to narrow the query
    }
    std::vector<usage_row> rows;
    if (keys.size() > max_report_rows) {  // the report answers 400: narrow the query
        keys.resize(max_report_rows + 1);
        for (auto& k : keys) rows.push_back({std::move(k), {}});
        usage_snapshot too_many;
        too_many.set_rows(std::move(rows));
        co_return too_many;
    }
    std::set<std::string> forecast_tenants;
    if (!q.tenant.empty()) forecast_tenants.insert(q.tenant);
    for (std::size_t i = 0; i < keys.size(); i += keys_per_script) {
        std::vector<std::string> names;
        const auto end = std::min(keys.size(), i + keys_per_script);
        for (std::size_t k = i; k < end; ++k) names.push_back(usage_hash_key(prefix_, keys[k]));
        auto run = read_.run(*redis_, std::move(names), {});
        auto r = co_await std::move(run);
        if (!r) co_return tl::unexpected(r.error());
        for (std::size_t k = i; k < end && k - i < r->elements.size(); ++k) {
            const auto& fields = r->elements[k - i];
            if (fields.elements.empty()) continue;  // expired
            rows.push_back({keys[k], parse_usage_fields(strings_of(fields))});
            forecast_tenants.insert(keys[k].tenant);
        }
    }
    usage_snapshot snapshot;
    snapshot.set_rows(std::move(rows));
    // The forecasts' history: requests per hour of the last 28 days.
    const std::int64_t end_hour = hour_of(now);
    const std::int64_t start_hour =
        end_hour - std::int64_t{forecast_history_days} * 24 * seconds_per_hour;
    for (const auto& tenant : forecast_tenants) {
        auto listed = indexed(tenant, start_hour, end_hour);
        auto found = co_await std::move(listed);
        if (!found) co_return tl::unexpected(found.error());
        std::map<std::int64_t, std::uint64_t> by_hour;
        for (std::size_t i = 0; i < found->size(); i += keys_per_script) {
            std::vector<std::string> names;
            const auto end = std::min(found->size(), i + keys_per_script);
            for (std::size_t k = i; k < end; ++k)
                names.push_back(usage_hash_key(prefix_, (*found)[k]));
            auto run = read_requests_.run(*redis_, std::move(names), {});
            auto r = co_await std::move(run);
            if (!r) co_return tl::unexpected(r.error());
            for (std::size_t k = i; k < end && k - i < r->elements.size(); ++k) {
                const auto counts = parse_usage_fields({"requests", r->elements[k - i].text});
                if (counts.requests > 0) by_hour[(*found)[k].hour] += counts.requests;
            }
        }
        snapshot.set_requests(tenant, std::move(by_hour));
    }
    co_return snapshot;
}

}  // namespace tunnel::usage
