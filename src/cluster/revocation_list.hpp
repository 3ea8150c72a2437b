// Revoked token IDs (jti) shared by the cluster (docs/cluster.md
// "Revocations"): `<prefix>revoked:<jti>` lives until the token's own expiry
// (after that the token is refused anyway), and every revocation is published
// on `<prefix>revocations`, so every relay subscribed to it learns of it at
// once and can close the tunnel using the token. Revocations this relay has
// seen are also kept in memory, so they still hold while Redis is away.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cluster/redis_client.hpp"
#include "cluster/redis_script.hpp"

namespace tunnel::cluster {

class revocation_list {
  public:
    using clock = std::chrono::system_clock;
    static constexpr std::size_t max_remembered = 100000;

    // `commands` sends SET/EXISTS/PUBLISH; `subscriber` (another client)
    // carries the subscription of watch().
    revocation_list(std::shared_ptr<redis_client> commands,
                    std::shared_ptr<redis_client> subscriber, std::string prefix = "tunnel:");

    // Revokes `jti` cluster-wide until `expires` (the token's exp).
    [[nodiscard]] asio::awaitable<core::result<void>> revoke(std::string jti,
                                                             clock::time_point expires);
    // Whether `jti` is revoked: remembered here, or found in Redis.
    [[nodiscard]] asio::awaitable<core::result<bool>> is_revoked(std::string jti);
    // Until when Redis keeps `jti` revoked; nullopt when it does not hold it.
    [[nodiscard]] asio::awaitable<core::result<std::optional<clock::time_point>>> expiry(
        std::string jti);
    // Every revocation Redis holds (SCAN over `<prefix>revoked:*`, one
    // round trip per page for the expiries), at most max_remembered.
    using revoked_entry = std::pair<std::string, clock::time_point>;  // jti, until
    [[nodiscard]] asio::awaitable<core::result<std::vector<revoked_entry>>> load();
    // Without Redis: what this relay has seen (its own and published ones).
    [[nodiscard]] bool known_revoked(const std::string& jti) const;

    // Subscribes; `on_revoked` runs for every revocation published by any
    // relay (this one included), on the subscriber's strand. The list must
    // outlive the subscription: stop `subscriber` before destroying it.
    void watch(std::function<void(const std::string& jti)> on_revoked);

    [[nodiscard]] std::string channel() const { return prefix_ + "revocations"; }

  private:
    void remember(const std::string& jti, clock::time_point until);

    std::shared_ptr<redis_client> commands_;
    std::shared_ptr<redis_client> subscriber_;
    std::string prefix_;
    redis_script expiries_;
    mutable std::mutex mutex_;
    std::map<std::string, clock::time_point> known_;  // jti -> until
};

// A jti we accept: 1-128 printable ASCII characters, no spaces.
[[nodiscard]] bool valid_jti(std::string_view jti) noexcept;

}  // namespace tunnel::cluster
