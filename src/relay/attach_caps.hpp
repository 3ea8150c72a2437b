// The per-tenant caps an attach is checked against
// (limits.max_tunnels_per_tenant, limits.max_names_per_tenant): what a tenant
// has attached, attaching and published now. Internal to relay/.
#pragma once

#include <memory>
#include <string>
#include <utility>

namespace tunnel::relay {

class relay_state;

// An attach of `tenant` past the token check and not yet in the tunnel
// list: counted against limits.max_tunnels_per_tenant until it is registered
// or fails, so concurrent attaches (on any worker) cannot slip past the cap.
// Made under relay.tenants_mutex, with the check (attach()).
class attaching_slot {
  public:
    // The caller holds relay->tenants_mutex.
    attaching_slot(std::shared_ptr<relay_state> relay, std::string tenant);
    attaching_slot(attaching_slot&& o) noexcept
        : relay_(std::move(o.relay_)), tenant_(std::move(o.tenant_)) {}
    attaching_slot(const attaching_slot&) = delete;
    attaching_slot& operator=(const attaching_slot&) = delete;
    attaching_slot& operator=(attaching_slot&&) = delete;
    ~attaching_slot() { release(); }
    void release();

  private:
    std::shared_ptr<relay_state> relay_;
    std::string tenant_;
};

// Tunnels of `tenant` attached (and not closing) or attaching; the caller
// holds relay.tenants_mutex.
[[nodiscard]] unsigned tunnels_of(const relay_state& relay, const std::string& tenant);

// Names `tenant` publishes, through any of its tunnels (raw TCP ones too).
[[nodiscard]] unsigned names_of(const relay_state& relay, const std::string& tenant);

}  // namespace tunnel::relay
