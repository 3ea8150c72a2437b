// `tunnel up --status-addr`: the manager's admin endpoints, served by
// observe::open_status_listener.
//   /healthz          200 when every runnable link is up (or degraded), else 503
//   /metrics          Prometheus text: per link and per transport (below)
//   /api/v1/links     the same JSON as `tunnel ls --json`
// The metrics are read from link::status() on each scrape, so they cannot
// disagree with `tunnel ls`:
//   tunnel_link_up{link}                       1 up or degraded, else 0
//   tunnel_link_state{link,state}              1 for the link's state, 0 for the others
//   tunnel_link_active_transport{link}         index of the active transport, -1 none
//   tunnel_link_rtt_seconds{link}              last keepalive RTT on the active transport
//   tunnel_link_switches_total{link}           transport switches
//   tunnel_link_bytes_total{link,direction}    bytes through the link's forwards (in/out)
//   tunnel_link_escalations_total{link}        outages that ran out of recovery steps
//   tunnel_link_transport_up{link,transport}   1 when that transport's session is up
//   tunnel_link_transport_rtt_ewma_seconds{link,transport}
//   tunnel_link_transport_probes_total / _probe_failures_total / _connects_total /
//   _connect_failures_total{link,transport}
//   tunnel_link_transport_predicted_failure_seconds{link,transport} and
//   _predicted_failure_error_seconds: when the RTT trend crosses the failure
//   bound, and its error (one standard deviation); -1 when there is none
#pragma once

#include <memory>
#include <vector>

#include "observe/admin_http.hpp"
#include "observe/metrics.hpp"

namespace tunnel::link {

class manager;

// Mirrors the links' status into the registry (a scrape calls it).
void update_link_metrics(observe::metrics_registry& registry, manager& m);

// The endpoint table; `registry` must outlive the server.
[[nodiscard]] std::vector<observe::admin_endpoint> link_status_endpoints(
    std::shared_ptr<manager> m, observe::metrics_registry& registry);

}  // namespace tunnel::link
