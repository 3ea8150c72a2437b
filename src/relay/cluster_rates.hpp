// The relay's rate limits shared through Redis (docs/cluster.md "Rate
// limits"): a shared_rate_limiter whose batches are
// cluster::shared_buckets::take_up_to on the cluster's command client, run
// on the relay's main io_context, and which decides with the relay's own
// buckets (relay_state::limiter) while that client is not connected.
// Counted in relay_metrics::cluster_rates.
#pragma once

#include <memory>

#include "cluster/redis_client.hpp"
#include "relay/shared_rate_limiter.hpp"

namespace tunnel::relay {

class relay_state;

[[nodiscard]] std::shared_ptr<shared_rate_limiter> make_cluster_rates(
    const std::shared_ptr<relay_state>& state, std::shared_ptr<cluster::redis_client> commands);

}  // namespace tunnel::relay
