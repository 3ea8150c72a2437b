// GET /api/v1/usage on the relay's admin listener (docs/relay.md "Usage
// analytics"): usage::usage_report over a read-only handle on the usage
// database of its own (the flusher thread writes through another; WAL), so
// a report never waits for a flush for long. Runs on the admin listener's
// thread (worker 0); the query is bounded (93 days, 20000 rows). In a
// cluster the rows come from Redis (usage/redis_usage.hpp): the answer is
// given later (admin_response::later), the listener never waits on Redis.
#pragma once

#include <memory>
#include <vector>

#include "observe/admin_http.hpp"

namespace tunnel::relay {

class relay_state;

[[nodiscard]] std::vector<observe::admin_endpoint> usage_endpoints(
    const std::shared_ptr<relay_state>& state);

}  // namespace tunnel::relay
