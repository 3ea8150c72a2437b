#include "relay/attach_caps.hpp"

#include <mutex>

#include "relay/relay_state.hpp"
#include "relay/tcp_routes.hpp"

namespace tunnel::relay {

attaching_slot::attaching_slot(std::shared_ptr<relay_state> relay, std::string tenant)
    : relay_(std::move(relay)), tenant_(std::move(tenant)) {
    ++relay_->attaching[tenant_];
}

void attaching_slot::release() {
    if (!relay_) return;
    std::lock_guard lock(relay_->tenants_mutex);
    auto it = relay_->attaching.find(tenant_);
    if (it != relay_->attaching.end() && --it->second == 0) relay_->attaching.erase(it);
    relay_.reset();
}

// Tunnels of `tenant` attached (and not closing) or attaching; the caller
// holds relay.tenants_mutex.
unsigned tunnels_of(const relay_state& relay, const std::string& tenant) {
    unsigned n = 0;
    const auto table = relay.table();
    for (const auto& [id, ref] : table->tunnels) {
        if (ref.tenant != tenant) continue;
        auto t = ref.tunnel.lock();
        if (t && !t->closing) ++n;
    }
    if (auto it = relay.attaching.find(tenant); it != relay.attaching.end()) n += it->second;
    return n;
}

// Names `tenant` publishes, through any of its tunnels (raw TCP ones too).
unsigned names_of(const relay_state& relay, const std::string& tenant) {
    unsigned n = relay.tcp ? relay.tcp->names_of(tenant) : 0;
    const auto table = relay.table();
    for (auto it = table->routes.lower_bound({tenant, std::string()});
         it != table->routes.end() && it->first.first == tenant; ++it)
        ++n;
    return n;
}

}  // namespace tunnel::relay
