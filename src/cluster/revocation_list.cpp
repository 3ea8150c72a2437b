#include "cluster/revocation_list.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/log_text.hpp"

namespace tunnel::cluster {

namespace {

// How long a revocation is remembered when the publisher's expiry is unknown.
constexpr auto remember_unknown = std::chrono::hours(24);

// KEYS: revocation keys; the expiry of each (PEXPIRETIME: unix ms, -1 none,
// -2 gone).
constexpr const char* expiries_lua = R"lua(
local out = {}
for i, k in ipairs(KEYS) do out[i] = redis.call('PEXPIRETIME', k) end
return out
)lua";

// A PEXPIRETIME answer >= -1 as a time: -1 (no TTL: written by hand) is kept
// as long as an unknown expiry.
revocation_list::clock::time_point until_of(long long unix_ms) {
    if (unix_ms < 0) return revocation_list::clock::now() + remember_unknown;
    return revocation_list::clock::time_point(std::chrono::milliseconds(unix_ms));
}

}  // namespace

bool valid_jti(std::string_view jti) noexcept {
    if (jti.empty() || jti.size() > 128) return false;
    for (char c : jti)
        if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f)
            return false;
    return true;
}

revocation_list::revocation_list(std::shared_ptr<redis_client> commands,
                                 std::shared_ptr<redis_client> subscriber, std::string prefix)
    : commands_(std::move(commands)),
      subscriber_(std::move(subscriber)),
      prefix_(std::move(prefix)),
      expiries_("revocation expiries", expiries_lua) {}

void revocation_list::remember(const std::string& jti, clock::time_point until) {
    std::lock_guard lock(mutex_);
    if (known_.size() >= max_remembered) {
        const auto now = clock::now();
        std::erase_if(known_, [now](const auto& kv) { return kv.second <= now; });
        if (known_.size() >= max_remembered) known_.erase(known_.begin());
    }
    auto& slot = known_[jti];
    slot = std::max(slot, until);
}

bool revocation_list::known_revoked(const std::string& jti) const {
    std::lock_guard lock(mutex_);
    auto it = known_.find(jti);
    return it != known_.end() && it->second > clock::now();
}

asio::awaitable<core::result<void>> revocation_list::revoke(std::string jti,
                                                            clock::time_point expires) {
    if (!valid_jti(jti))
        co_return core::fail(core::errc::invalid_argument,
                             "a token ID (jti) is 1-128 printable characters without spaces");
    const auto now = clock::now();
    auto ttl = std::chrono::duration_cast<std::chrono::milliseconds>(expires - now);
    if (ttl < std::chrono::seconds(1)) ttl = std::chrono::seconds(1);
    remember(jti, now + ttl);
    std::vector<std::string> set{"SET", prefix_ + "revoked:" + jti, "1", "PX",
                                 std::to_string(ttl.count())};
    auto stored = commands_->command(std::move(set));
    auto r = co_await std::move(stored);
    if (!r) co_return tl::unexpected(r.error());
    if (!r->is_ok())
        co_return core::fail(core::errc::protocol_error,
                             fmt::format("revocation of {}: SET answered {}",
                                         core::log_text(jti, 64), describe(*r)));
    std::vector<std::string> publish{"PUBLISH", channel(), jti};
    auto published = commands_->command(std::move(publish));
    auto p = co_await std::move(published);
    if (!p) co_return tl::unexpected(p.error());
    co_return core::result<void>{};
}

asio::awaitable<core::result<bool>> revocation_list::is_revoked(std::string jti) {
    if (known_revoked(jti)) co_return true;
    auto op = expiry(std::move(jti));
    auto until = co_await std::move(op);
    if (!until) co_return tl::unexpected(until.error());
    co_return until->has_value();
}

asio::awaitable<core::result<std::optional<revocation_list::clock::time_point>>>
revocation_list::expiry(std::string jti) {
    using answer = std::optional<clock::time_point>;
    if (!valid_jti(jti)) co_return answer{};
    std::vector<std::string> exists{"PEXPIRETIME", prefix_ + "revoked:" + jti};
    auto op = commands_->command(std::move(exists));
    auto r = co_await std::move(op);
    if (!r) co_return tl::unexpected(r.error());
    if (!r->is_integer())
        co_return core::fail(
            core::errc::protocol_error,
            fmt::format("revocation check: PEXPIRETIME answered {}", describe(*r)));
    if (r->integer == -2) co_return answer{};  // no such key
    const auto until = until_of(r->integer);
    remember(jti, until);
    co_return answer{until};
}

asio::awaitable<core::result<std::vector<revocation_list::revoked_entry>>> revocation_list::load() {
    std::vector<revoked_entry> out;
    const std::string key_prefix = prefix_ + "revoked:";
    std::string cursor = "0";
    do {
        std::vector<std::string> scan{"SCAN", cursor, "MATCH", key_prefix + "*", "COUNT", "500"};
        auto op = commands_->command(std::move(scan));
        auto r = co_await std::move(op);
        if (!r) co_return tl::unexpected(r.error());
        if (!r->is_array() || r->elements.size() != 2 || !r->elements[1].is_array())
            co_return core::fail(core::errc::protocol_error,
                                 fmt::format("revocations: SCAN answered {}", describe(*r)));
        cursor = r->elements[0].text;
        std::vector<std::string> keys;
        for (const auto& k : r->elements[1].elements)
            if (k.text.size() > key_prefix.size()) keys.push_back(k.text);
        if (keys.empty()) continue;
        auto run = expiries_.run(*commands_, keys, {});
        auto e = co_await std::move(run);
        if (!e) co_return tl::unexpected(e.error());
        if (!e->is_array() || e->elements.size() != keys.size())
            co_return core::fail(
                core::errc::protocol_error,
                fmt::format("revocations: the expiries came back as {}", describe(*e)));
        for (std::size_t i = 0; i < keys.size() && out.size() < max_remembered; ++i) {
            const long long ms = e->elements[i].integer;
            if (ms == -2) continue;  // expired between SCAN and now
            const auto until = until_of(ms);
            auto jti = keys[i].substr(key_prefix.size());
            if (!valid_jti(jti)) continue;
            remember(jti, until);
            out.emplace_back(std::move(jti), until);
        }
    } while (cursor != "0" && out.size() < max_remembered);
    co_return out;
}

void revocation_list::watch(std::function<void(const std::string& jti)> on_revoked) {
    subscriber_->subscribe(channel(), [this, on_revoked = std::move(on_revoked)](
                                          const std::string&, const std::string& jti) {
        if (!valid_jti(jti)) {
            spdlog::warn("cluster: ignored a malformed revocation ({} bytes)", jti.size());
            return;
        }
        remember(jti, clock::now() + remember_unknown);
        if (on_revoked) on_revoked(jti);
    });
}

}  // namespace tunnel::cluster
