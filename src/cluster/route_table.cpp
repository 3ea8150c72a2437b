#include "cluster/route_table.hpp"

#include <fmt/format.h>

#include "core/log_text.hpp"

namespace tunnel::cluster {

namespace {

// KEYS[1] route; ARGV lease, node, address, ttl ms, attached (1/0). A claim
// without a tunnel (a relay holding the lease after its tunnel dropped) never
// replaces the same lease's attached claim on another relay: the tunnel moved
// there (found by chaos.cluster: the left relay took the route back, then
// deleted it on release). Answered 2 with the holder.
constexpr const char* claim_lua = R"lua(
local cur = redis.call('HGET', KEYS[1], 'lease')
if cur and cur ~= ARGV[1] then
  return {0, redis.call('HGET', KEYS[1], 'node') or '', redis.call('HGET', KEYS[1], 'address') or '',
          redis.call('HGET', KEYS[1], 'attached') or '0', redis.call('PTTL', KEYS[1])}
end
if cur and ARGV[5] == '0' and redis.call('HGET', KEYS[1], 'attached') == '1'
   and redis.call('HGET', KEYS[1], 'node') ~= ARGV[2] then
  return {2, redis.call('HGET', KEYS[1], 'node') or '', redis.call('HGET', KEYS[1], 'address') or '',
          '1', redis.call('PTTL', KEYS[1])}
end
redis.call('HSET', KEYS[1], 'lease', ARGV[1], 'node', ARGV[2], 'address', ARGV[3], 'attached', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {1, ARGV[2], ARGV[3], ARGV[5], tonumber(ARGV[4])}
)lua";

// KEYS[1] route; ARGV lease, node. A lease that moved to another relay is
// that relay's to release, not the one it left.
constexpr const char* release_lua = R"lua(
if redis.call('HGET', KEYS[1], 'lease') == ARGV[1] and redis.call('HGET', KEYS[1], 'node') == ARGV[2] then
  return redis.call('DEL', KEYS[1])
end
return 0
)lua";

// KEYS[1] route.
constexpr const char* lookup_lua = R"lua(
local v = redis.call('HMGET', KEYS[1], 'lease', 'node', 'address', 'attached')
if not v[1] then return false end
return {v[1], v[2], v[3], v[4], redis.call('PTTL', KEYS[1])}
)lua";

bool valid_part(const std::string& s) {
    if (s.empty() || s.size() > 63) return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    return true;
}

core::result<void> check_route(const std::string& tenant, const std::string& name) {
    if (!valid_part(tenant) || !valid_part(name))
        return core::fail(core::errc::invalid_argument,
                          fmt::format("route {}/{}: tenant and name must be DNS labels (a-z 0-9 -)",
                                      core::log_text(tenant, 64), core::log_text(name, 64)));
    return {};
}

core::error malformed(std::string_view what, const reply& r) {
    return core::error{core::errc::protocol_error,
                       fmt::format("route table: unexpected reply to {}: {}", what, describe(r))};
}

std::chrono::milliseconds ttl_of(const reply& r) {
    return std::chrono::milliseconds(r.is_integer() && r.integer > 0 ? r.integer : 0);
}

}  // namespace

route_table::route_table(std::shared_ptr<redis_client> redis, std::string node, std::string address,
                         std::string prefix)
    : redis_(std::move(redis)),
      node_(std::move(node)),
      address_(std::move(address)),
      prefix_(std::move(prefix)),
      claim_("route claim", claim_lua),
      release_("route release", release_lua),
      lookup_("route lookup", lookup_lua) {}

std::string route_table::key(const std::string& tenant, const std::string& name) const {
    return fmt::format("{}route:{}/{}", prefix_, tenant, name);
}

asio::awaitable<core::result<claim_outcome>> route_table::claim(std::string tenant,
                                                                std::string name, std::string lease,
                                                                std::chrono::milliseconds ttl,
                                                                bool attached) {
    if (auto ok = check_route(tenant, name); !ok) co_return tl::unexpected(ok.error());
    if (lease.empty() || lease.size() > 128)
        co_return core::fail(core::errc::invalid_argument, "route claim: the lease is empty");
    if (ttl.count() <= 0) ttl = std::chrono::milliseconds(1);
    std::vector<std::string> keys{key(tenant, name)};
    std::vector<std::string> args{lease, node_, address_, std::to_string(ttl.count()),
                                  attached ? "1" : "0"};
    auto op = claim_.run(*redis_, std::move(keys), std::move(args));
    auto r = co_await std::move(op);
    if (!r) co_return tl::unexpected(r.error());
    if (!r->is_array() || r->elements.size() != 5 || !r->elements[0].is_integer())
        co_return tl::unexpected(malformed("a claim", *r));
    claim_outcome out;
    out.claimed = r->elements[0].integer == 1;
    out.holder.node = r->elements[1].text;
    out.holder.address = r->elements[2].text;
    out.holder.attached = r->elements[3].text == "1";
    out.holder.expires_in = ttl_of(r->elements[4]);
    if (out.claimed || r->elements[0].integer == 2) out.holder.lease = lease;  // 2: moved
    co_return out;
}

asio::awaitable<core::result<bool>> route_table::release(std::string tenant, std::string name,
                                                         std::string lease) {
    if (auto ok = check_route(tenant, name); !ok) co_return tl::unexpected(ok.error());
    std::vector<std::string> keys{key(tenant, name)};
    std::vector<std::string> args{std::move(lease), node_};
    auto op = release_.run(*redis_, std::move(keys), std::move(args));
    auto r = co_await std::move(op);
    if (!r) co_return tl::unexpected(r.error());
    if (!r->is_integer()) co_return tl::unexpected(malformed("a release", *r));
    co_return r->integer == 1;
}

asio::awaitable<core::result<std::optional<route_record>>> route_table::lookup(std::string tenant,
                                                                               std::string name) {
    if (auto ok = check_route(tenant, name); !ok) co_return tl::unexpected(ok.error());
    std::vector<std::string> keys{key(tenant, name)};
    auto op = lookup_.run(*redis_, std::move(keys), {});
    auto r = co_await std::move(op);
    if (!r) co_return tl::unexpected(r.error());
    if (r->is_nil()) co_return std::optional<route_record>();
    if (!r->is_array() || r->elements.size() != 5)
        co_return tl::unexpected(malformed("a lookup", *r));
    route_record rec;
    rec.lease = r->elements[0].text;
    rec.node = r->elements[1].text;
    rec.address = r->elements[2].text;
    rec.attached = r->elements[3].text == "1";
    rec.expires_in = ttl_of(r->elements[4]);
    co_return rec;
}

}  // namespace tunnel::cluster
