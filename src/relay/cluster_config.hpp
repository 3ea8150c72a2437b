// The `cluster:` section of the relay config (docs/cluster.md): relays with
// one share their route table, rate-limit buckets and revoked token IDs in
// Redis. A relay without it needs no Redis.
//
//   cluster:
//     redis: redis://127.0.0.1:6379       # or redis-sentinel://host:port[,host:port]/master
//     node: relay-a                        # unique per relay
//     internal_listen: 127.0.0.1:7443      # the relay-to-relay hop
//     advertise: 10.0.0.5:7443             # optional: where the others reach it
//     secret_file: /etc/tunnel/cluster.secret
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cluster/redis_address.hpp"
#include "core/yaml_config.hpp"

namespace tunnel::relay {

struct cluster_config {
    cluster::redis_address redis;  // parsed `redis:` (the password never printed)
    std::string node;              // a DNS label, unique in the cluster
    std::string internal_host;     // internal_listen
    std::uint16_t internal_port = 0;
    std::string secret_file;  // the hop's shared secret (read at start)
    // `advertise`: the address announced to the other relays (empty: the
    // internal_listen address, which is then a specific one).
    std::string advertise_host;
    std::uint16_t advertise_port = 0;

    // HOST:PORT the other relays reach this one at (announced with its
    // claims): `advertise`, or `internal_listen` without it.
    [[nodiscard]] std::string internal_address() const;
};

// Reads `cluster:`; every problem goes to `r` with its path and line.
void read_cluster_config(core::yaml_reader& r, const YAML::Node& node, const std::string& path,
                         std::optional<cluster_config>& out);

// "key: value" lines for describe(relay_config); the password as ***.
[[nodiscard]] std::vector<std::string> describe(const cluster_config& config);

}  // namespace tunnel::relay
