// Raw TCP publishing (docs/relay.md "Raw TCP"): `tunnel connect
// --expose-tcp NAME=HOST:PORT` publishes a TCP service (SSH behind NAT, a
// database) either on a public port the relay hands out from a range, or,
// for TLS services, by SNI on the relay's public port without terminating
// the TLS (the relay never holds the service's key).
//
//   tcp:
//     ports: 20000-20099             # public ports for --expose-tcp names (or one port)
//     bind: 0.0.0.0                  # where they listen (default: listen's host)
//     sni_domain: tcp.example.com    # TLS whose SNI is <name>--<tenant>.<sni_domain>
//                                    # on the public port is spliced to the tunnel
//     client_hello_timeout: 5s       # a caller's whole ClientHello within this
//     max_connections_per_tenant: 256
//
// ports is required: every raw TCP name gets a port, which the client is told
// (its forward is known by it); sni_domain adds routing by name on the public
// port (bind: 127.0.0.1 keeps the ports private, for SNI routing alone).
// Absent section: no raw TCP.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/yaml_config.hpp"

namespace tunnel::relay {

struct tcp_config {
    bool enabled = false;          // the section is present
    std::uint16_t first_port = 0;  // 0: no port publishing
    std::uint16_t last_port = 0;
    std::string bind;        // IP literal; empty: the host of `listen` (all interfaces if none)
    std::string sni_domain;  // empty: no SNI routing
    std::chrono::milliseconds client_hello_timeout{std::chrono::seconds(5)};
    unsigned max_connections_per_tenant = 256;

    [[nodiscard]] bool ports_enabled() const noexcept { return first_port != 0; }
    [[nodiscard]] bool sni_enabled() const noexcept { return !sni_domain.empty(); }
};

// Largest port range: every port is a listening socket while it is assigned.
inline constexpr unsigned max_tcp_ports = 4096;

// Reads `tcp:`; problems go to `r` with their path.
void read_tcp_config(core::yaml_reader& r, const YAML::Node& node, const std::string& path,
                     tcp_config& out);

// "key: value" lines for describe(relay_config).
[[nodiscard]] std::vector<std::string> describe(const tcp_config& tcp);

}  // namespace tunnel::relay
