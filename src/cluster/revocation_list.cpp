#include "cluster/revocation_list.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/log_text.hpp"

namespace tunnel::cluster {

namespace {

// How long a revocation is remembered when the publisher's expiry is unknown.
constexpr auto remember_unknown = std::chrono::hours(24);

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
      prefix_(std::move(prefix)) {}

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
    if (!valid_jti(jti)) co_return false;
    std::vector<std::string> exists{"PEXPIRETIME", prefix_ + "revoked:" + jti};
    auto op = commands_->command(std::move(exists));
    auto r = co_await std::move(op);
    if (!r) co_return tl::unexpected(r.error());
    if (!r->is_integer())
        co_return core::fail(
            core::errc::protocol_error,
            fmt::format("revocation check: PEXPIRETIME answered {}", describe(*r)));
    if (r->integer < 0) co_return false;  // -2: no such key
    remember(jti, clock::time_point(std::chrono::milliseconds(r->integer)));
    co_return true;
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
