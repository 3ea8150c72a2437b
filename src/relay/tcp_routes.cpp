#include "relay/tcp_routes.hpp"

#include <fmt/format.h>

namespace tunnel::relay {

core::result<std::uint16_t> tcp_routes::assign(const std::string& tenant, const std::string& name,
                                               std::uint16_t wanted, const held_fn& held,
                                               const std::function<bool(std::uint16_t)>& usable) {
    std::lock_guard lock(mutex_);
    const key k{tenant, name};
    if (auto it = ports_.find(k); it != ports_.end()) {
        if (wanted != 0 && wanted != it->second)
            return core::fail(core::errc::denied,
                              fmt::format("{}/{} has port {}, not {}: ask for port 0", tenant, name,
                                          it->second, wanted));
        return it->second;
    }
    // A port is free when nobody holds it, or its holder is neither
    // published nor held by a lease any more.
    auto free_port = [&](std::uint16_t p) {
        auto o = owners_.find(p);
        if (o == owners_.end()) return true;
        if (routes_.count(o->second) || pending_.count(o->second) ||
            (held && held(o->second.first, o->second.second)))
            return false;
        ports_.erase(o->second);
        owners_.erase(o);
        return true;
    };
    auto take = [&](std::uint16_t p) {
        ports_[k] = p;
        owners_[p] = k;
        pending_.insert(k);  // until published or abandoned
        return p;
    };
    // A client asking for a port (the one it had) is told no other: the
    // answer to a non-zero port carries none (RFC 4254 §7.1).
    if (wanted != 0) {
        if (wanted >= first_ && wanted <= last_ && free_port(wanted) && (!usable || usable(wanted)))
            return take(wanted);
        return core::fail(
            core::errc::denied,
            fmt::format("port {} is not free for {}/{}: ask for port 0", wanted, tenant, name));
    }
    unsigned unusable = 0;
    for (unsigned p = first_; p <= last_ && p != 0; ++p) {
        const auto port = static_cast<std::uint16_t>(p);
        if (port == wanted || !free_port(port)) continue;
        if (usable && !usable(port)) {
            // Taken by another program: skip it, a few times at most.
            if (++unusable >= 16) break;
            continue;
        }
        return take(port);
    }
    return core::fail(core::errc::resource_exhausted,
                      fmt::format("no free port in tcp.ports {}-{} ({} assigned{}); ask the "
                                  "relay's operator for a larger range",
                                  first_, last_, owners_.size(),
                                  unusable ? fmt::format(", {} in use by other programs", unusable)
                                           : std::string()));
}

void tcp_routes::abandon(const std::string& tenant, const std::string& name) {
    std::lock_guard lock(mutex_);
    const key k{tenant, name};
    if (!pending_.erase(k)) return;
    if (auto it = ports_.find(k); it != ports_.end()) {
        owners_.erase(it->second);
        ports_.erase(it);
    }
}

void tcp_routes::release_port(const std::string& tenant, const std::string& name) {
    std::lock_guard lock(mutex_);
    pending_.erase({tenant, name});
    if (auto it = ports_.find({tenant, name}); it != ports_.end()) {
        owners_.erase(it->second);
        ports_.erase(it);
    }
}

core::result<void> tcp_routes::publish(tcp_route route) {
    std::lock_guard lock(mutex_);
    key k{route.tenant, route.name};
    if (auto it = routes_.find(k); it != routes_.end() && it->second.tunnel_id != route.tunnel_id)
        return core::fail(core::errc::denied,
                          fmt::format("{:?} is already published by another tunnel of tenant {}",
                                      route.name, route.tenant));
    pending_.erase(k);
    routes_[std::move(k)] = std::move(route);
    return {};
}

std::optional<tcp_route> tcp_routes::unpublish(const std::string& tenant, const std::string& name,
                                               std::uint64_t tunnel) {
    std::lock_guard lock(mutex_);
    auto it = routes_.find({tenant, name});
    if (it == routes_.end() || it->second.tunnel_id != tunnel) return std::nullopt;
    auto out = std::move(it->second);
    routes_.erase(it);
    return out;
}

std::vector<tcp_route> tcp_routes::remove_tunnel(std::uint64_t tunnel) {
    std::lock_guard lock(mutex_);
    std::vector<tcp_route> out;
    for (auto it = routes_.begin(); it != routes_.end();) {
        if (it->second.tunnel_id == tunnel) {
            out.push_back(std::move(it->second));
            it = routes_.erase(it);
        } else {
            ++it;
        }
    }
    return out;
}

std::optional<tcp_route> tcp_routes::find(const std::string& tenant,
                                          const std::string& name) const {
    std::lock_guard lock(mutex_);
    auto it = routes_.find({tenant, name});
    if (it == routes_.end()) return std::nullopt;
    return it->second;
}

unsigned tcp_routes::names_of(const std::string& tenant) const {
    std::lock_guard lock(mutex_);
    unsigned n = 0;
    for (auto it = routes_.lower_bound({tenant, std::string()});
         it != routes_.end() && it->first.first == tenant; ++it)
        ++n;
    return n;
}

std::vector<tcp_assignment> tcp_routes::assignments() const {
    std::lock_guard lock(mutex_);
    std::vector<tcp_assignment> out;
    auto conns = [&](const std::string& tenant) {
        auto it = connections_.find(tenant);
        return it == connections_.end() ? 0u : it->second;
    };
    for (const auto& [k, port] : ports_) {
        tcp_assignment a{k.first, k.second, port, false, 0, conns(k.first)};
        if (auto r = routes_.find(k); r != routes_.end()) {
            a.published = true;
            a.tunnel = r->second.tunnel_id;
        }
        out.push_back(std::move(a));
    }
    // SNI-routed names without a port.
    for (const auto& [k, r] : routes_)
        if (!ports_.count(k))
            out.push_back({k.first, k.second, 0, true, r.tunnel_id, conns(k.first)});
    return out;
}

std::optional<std::uint16_t> tcp_routes::port_of(const std::string& tenant,
                                                 const std::string& name) const {
    std::lock_guard lock(mutex_);
    auto it = ports_.find({tenant, name});
    if (it == ports_.end()) return std::nullopt;
    return it->second;
}

bool tcp_routes::open_connection(const std::string& tenant, unsigned cap) {
    std::lock_guard lock(mutex_);
    auto& n = connections_[tenant];
    if (n >= cap) {
        if (n == 0) connections_.erase(tenant);
        return false;
    }
    ++n;
    return true;
}

void tcp_routes::close_connection(const std::string& tenant) {
    std::lock_guard lock(mutex_);
    auto it = connections_.find(tenant);
    if (it != connections_.end() && --it->second == 0) connections_.erase(it);
}

}  // namespace tunnel::relay
