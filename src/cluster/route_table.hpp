// The cluster's route table in Redis (docs/cluster.md "The route table"):
// tenant/name -> the relay (node) holding the tunnel, that relay's internal
// address (the relay-to-relay hop), the lease that holds the name and when
// the claim expires. One hash per route, `<prefix>route:<tenant>/<name>`,
// with a Redis TTL as the expiry: a relay refreshes the claims of its
// attached tunnels, sets the TTL to the lease's grace when a tunnel drops,
// and a relay that dies stops refreshing, so its claims expire by themselves.
//
// Claiming is one Lua script: a name held under another lease is refused,
// whoever asks (another tenant's tunnel, the same tenant's, another relay);
// the same lease claims again (a refresh, or the lease moving to another
// relay after a re-attach). Lease values are opaque to the table: a relay
// puts a digest of the lease ID there, never the ID itself.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "cluster/redis_client.hpp"
#include "cluster/redis_script.hpp"

namespace tunnel::cluster {

struct route_record {
    std::string node;     // the relay holding the tunnel
    std::string address;  // its internal_listen (host:port)
    std::string lease;    // the lease holding the name (opaque)
    bool attached = false;
    std::chrono::milliseconds expires_in{0};  // until the claim ends without a refresh
};

struct claim_outcome {
    bool claimed = false;
    route_record holder;  // refused: who holds the name (lease left empty)
};

class route_table {
  public:
    route_table(std::shared_ptr<redis_client> redis, std::string node, std::string address,
                std::string prefix = "tunnel:");

    // Claims (or refreshes) tenant/name for `lease` until now + ttl.
    // `attached`: the lease's tunnel is attached here (false: held in grace).
    [[nodiscard]] asio::awaitable<core::result<claim_outcome>> claim(std::string tenant,
                                                                     std::string name,
                                                                     std::string lease,
                                                                     std::chrono::milliseconds ttl,
                                                                     bool attached = true);
    // Drops the route if `lease` holds it on this node. True when it did.
    [[nodiscard]] asio::awaitable<core::result<bool>> release(std::string tenant, std::string name,
                                                              std::string lease);
    [[nodiscard]] asio::awaitable<core::result<std::optional<route_record>>> lookup(
        std::string tenant, std::string name);

    [[nodiscard]] const std::string& node() const noexcept { return node_; }
    [[nodiscard]] std::string key(const std::string& tenant, const std::string& name) const;

  private:
    std::shared_ptr<redis_client> redis_;
    std::string node_;
    std::string address_;
    std::string prefix_;
    redis_script claim_;
    redis_script release_;
    redis_script lookup_;
};

}  // namespace tunnel::cluster
