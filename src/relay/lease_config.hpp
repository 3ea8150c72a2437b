// Leases and the request queue of a relay (docs/relay.md "Leases and the
// request queue"): how long a dropped tunnel keeps its names, and how
// requests for a leased name without a tunnel wait instead of getting 503.
//
//   leases:
//     grace: 60s                      # 0 turns leases off
//   queue:
//     max_requests: 64                # per name
//     max_bytes: 8388608              # per name: heads + bodies the relay may hold
//     max_wait: 30s
//     priority_header: Tunnel-Priority   # high | normal | low
//     trusted_tenants: [acme, batch-*]   # whose callers' header is believed
//     routes: {acme/reports: low}        # a route's class (the header wins when trusted)
//     state_file: /var/lib/tunnel/queue.db  # waiting requests kept across a graceful restart
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/yaml_config.hpp"

namespace tunnel::relay {

struct lease_config {
    // How long the names of a tunnel that dropped stay held for it; a
    // token's `lease_grace` claim may only shorten it. 0: no leases.
    std::chrono::milliseconds grace{std::chrono::seconds(60)};
};

// Priority classes of queued requests, delivered high first, FIFO within one.
enum class queue_class { high = 0, normal = 1, low = 2 };
inline constexpr int queue_classes = 3;
[[nodiscard]] std::string_view to_string(queue_class c) noexcept;
[[nodiscard]] std::optional<queue_class> parse_queue_class(std::string_view text) noexcept;

struct queue_config {
    unsigned max_requests = 64;                    // per name; 0 turns the queue off
    std::size_t max_bytes = std::size_t{8} << 20;  // per name
    std::chrono::milliseconds max_wait{std::chrono::seconds(30)};
    std::string priority_header = "Tunnel-Priority";
    std::vector<std::string> trusted_tenants;   // tenant globs
    std::map<std::string, queue_class> routes;  // "tenant/name" -> class
    // Where requests still waiting at a graceful shutdown are written, to be
    // delivered after the restart (deferred_requests.hpp); empty: they get 503.
    std::string state_file;
};

// Read `leases:` / `queue:`; problems go to `r` with their path.
void read_lease_config(core::yaml_reader& r, const YAML::Node& node, const std::string& path,
                       lease_config& out);
void read_queue_config(core::yaml_reader& r, const YAML::Node& node, const std::string& path,
                       queue_config& out);

// "key: value" lines for describe(relay_config).
[[nodiscard]] std::vector<std::string> describe(const lease_config& leases,
                                                const queue_config& queue);

// The class of a request to tenant/name: the priority header when the tenant
// is trusted and the value is a class, else the route's, else normal.
[[nodiscard]] queue_class class_of(const queue_config& config, std::string_view tenant,
                                   std::string_view name, const std::string* header_value);

}  // namespace tunnel::relay
