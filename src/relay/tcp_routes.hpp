// The relay's raw TCP names (docs/relay.md "Raw TCP"): which tunnel
// publishes each tenant/name, the public port assigned to it from tcp.ports,
// and the connections each tenant has open. A port stays assigned to its
// tenant/name while the name is published or its lease holds it (a
// reconnecting client gets the same port); after that it is free again.
// Thread-safe: the workers publish, route and count concurrently. No I/O;
// unit-tested in tests/unit/relay/tcp_routes_test.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace tunnel::relay {

struct tunnel_entry;

struct tcp_route {
    std::string tenant;
    std::string name;
    std::weak_ptr<tunnel_entry> tunnel;
    std::uint64_t tunnel_id = 0;
    unsigned worker = 0;        // the tunnel's
    std::uint16_t port = 0;     // the public port
    std::string address;        // the tcpip-forward bind address (forwarded-tcpip channels name it)
    std::uint32_t forward = 0;  // the port the client knows the forward by
    // Closes the port's listener; called on the tunnel's worker.
    std::function<void()> close_listener;
};

// One row of the admin API's view.
struct tcp_assignment {
    std::string tenant;
    std::string name;
    std::uint16_t port = 0;
    bool published = false;  // a tunnel publishes it now (else a lease holds the port)
    std::uint64_t tunnel = 0;
    unsigned connections = 0;  // open connections of the tenant
};

class tcp_routes {
  public:
    using key = std::pair<std::string, std::string>;  // (tenant, name)
    // Whether a lease still holds tenant/name (lease_store::held).
    using held_fn = std::function<bool(const std::string& tenant, const std::string& name)>;

    tcp_routes(std::uint16_t first, std::uint16_t last) : first_(first), last_(last) {}

    // The port for tenant/name: the one assigned to it already; else
    // `wanted` (non-zero: the port a reconnecting client had) when it is in
    // the range, free and usable; else (wanted 0) the lowest free port that
    // `usable` accepts (it tries to listen). A port whose holder is not
    // published and no longer `held` is free. Refused (errc::denied) when
    // the name has another port than wanted, or wanted cannot be had: the
    // client asks again with 0. errc::resource_exhausted: the range is full.
    [[nodiscard]] core::result<std::uint16_t> assign(
        const std::string& tenant, const std::string& name, std::uint16_t wanted,
        const held_fn& held, const std::function<bool(std::uint16_t)>& usable);
    // A port assign() just gave is not used after all (the publish failed):
    // free again. A port assigned before (held by a lease) stays.
    void abandon(const std::string& tenant, const std::string& name);
    // The port is no longer assigned (unpublished on purpose, no lease).
    void release_port(const std::string& tenant, const std::string& name);

    // Publishes a route; refused when another tunnel publishes the name.
    [[nodiscard]] core::result<void> publish(tcp_route route);
    // Removes tenant/name when `tunnel` publishes it; returns the route.
    std::optional<tcp_route> unpublish(const std::string& tenant, const std::string& name,
                                       std::uint64_t tunnel);
    // Removes every route of `tunnel`.
    std::vector<tcp_route> remove_tunnel(std::uint64_t tunnel);

    [[nodiscard]] std::optional<tcp_route> find(const std::string& tenant,
                                                const std::string& name) const;
    [[nodiscard]] unsigned names_of(const std::string& tenant) const;
    [[nodiscard]] std::vector<tcp_assignment> assignments() const;
    [[nodiscard]] std::optional<std::uint16_t> port_of(const std::string& tenant,
                                                       const std::string& name) const;

    // A tenant's open connections: false (and nothing counted) at `cap`.
    [[nodiscard]] bool open_connection(const std::string& tenant, unsigned cap);
    void close_connection(const std::string& tenant);

  private:
    std::uint16_t first_;
    std::uint16_t last_;
    mutable std::mutex mutex_;
    std::map<key, tcp_route> routes_;
    std::map<key, std::uint16_t> ports_;  // assigned ports
    std::map<std::uint16_t, key> owners_;
    std::set<key> pending_;  // assigned, not yet published: nobody else takes them
    std::map<std::string, unsigned> connections_;
};

}  // namespace tunnel::relay
