// Revocations shared by the relays of a cluster (docs/cluster.md
// "Revocations"): a revocation_list over the relay's local one (SQLite or
// memory, revocation_list.hpp), which stays what every check reads, so
// attaches and requests never wait on Redis.
//
//   add      the local list at once (its subscribers close this relay's
//            tunnels), then, in the background, `<prefix>revoked:<jti>`
//            until the token's expiry and a PUBLISH on `<prefix>revocations`
//            (cluster::revocation_list::revoke). With Redis away the
//            revocation holds here and is written when Redis is back;
//            pending_reason() says so meanwhile.
//   heard    a jti published by any relay goes into the local list at once
//            (kept 24 h, extended to the key's own expiry when Redis says),
//            so its subscribers close the tunnels using it here too.
//   resync   after every (re)connection of either client: every revocation
//            Redis holds (SCAN) goes into the local list, and every one this
//            relay knows that Redis lacks (a restarted Redis, a revoke made
//            during an outage) is written and published again.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/redis_client.hpp"
#include "core/asio.hpp"
#include "relay/revocation_list.hpp"

namespace tunnel::relay {

class cluster_revocations final : public revocation_list {
  public:
    // Subscribes now; the clients are started (and stopped) by their owner
    // (cluster_routes). `io` runs the writes and the resynchronisations.
    [[nodiscard]] static std::unique_ptr<cluster_revocations> create(
        asio::io_context& io, std::unique_ptr<revocation_list> local,
        std::shared_ptr<cluster::redis_client> commands,
        std::shared_ptr<cluster::redis_client> subscriber, std::string prefix = "tunnel:");
    ~cluster_revocations() override;

    [[nodiscard]] core::result<bool> add(revoked_token entry) override;
    [[nodiscard]] bool revoked(std::string_view jti) const override;
    [[nodiscard]] std::vector<revoked_token> list() const override;
    void subscribe(listener fn) override;
    [[nodiscard]] std::string pending_reason() const override;

  private:
    struct shared;  // what callbacks and background writes hold
    explicit cluster_revocations(std::shared_ptr<shared> s) : shared_(std::move(s)) {}
    std::shared_ptr<shared> shared_;
};

}  // namespace tunnel::relay
