// The forward component's Prometheus families (STYLE 12) in the one
// observe::metrics_registry. The supervisor keeps its counts in
// supervisor_stats (one executor, plain integers); update() mirrors a
// snapshot into the families when /metrics is read.
//
//   observe::metrics_registry registry;
//   forward_metrics m(registry);
//   m.update(supervisor->snapshot());
//   std::string text = registry.expose();
#pragma once

#include "forward/forward_stats.hpp"
#include "observe/metrics.hpp"

namespace tunnel::forward {

struct forward_metrics {
    explicit forward_metrics(observe::metrics_registry& registry);
    void update(const supervisor_stats& stats);

    observe::gauge_family& connected;           // {destination}: 1 while the session is up
    observe::counter_family& connects;          // {}
    observe::counter_family& reconnects;        // {}
    observe::counter_family& connect_failures;  // {}
    observe::counter_family& disconnects;       // {}
    // Per forward, labels {forward, kind}: forward="-L 8080:db:5432".
    observe::gauge_family& up;
    observe::counter_family& bytes_out;  // towards the target
    observe::counter_family& bytes_in;   // back from the target
    observe::counter_family& connections;
    observe::counter_family& connection_failures;
    observe::gauge_family& open_channels;
    observe::gauge_family& state;  // {forward, state}: 1 for the current state
};

}  // namespace tunnel::forward
