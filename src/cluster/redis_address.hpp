// Where a relay finds Redis (docs/cluster.md "Addresses"):
//
//   redis://[[user]:password@]host[:port][/db]           one server (port 6379)
//   redis-sentinel://[[user]:password@]host[:port][,host[:port]...]/master
//                                                        ask the sentinels (port 26379)
//                                                        which server is `master`
//
// The password authenticates to the Redis server (AUTH), never to sentinels,
// and never appears in a message: describe() and every parse error print it
// as "***".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace tunnel::cluster {

struct redis_endpoint {
    std::string host;  // a name or an IP literal (IPv6 without brackets)
    std::uint16_t port = 0;
};

struct redis_address {
    enum class kind { direct, sentinel };

    kind type = kind::direct;
    std::vector<redis_endpoint> endpoints;  // direct: the server; sentinel: the sentinels
    std::string master;                     // sentinel: the monitored master's name
    std::string user;                       // ACL user (empty: AUTH password alone)
    std::string password;                   // empty: no AUTH
    int db = 0;                             // SELECT db (0-15 on a default server)
};

// Parses a URL; the message says what is wrong and shows a correct example.
[[nodiscard]] core::result<redis_address> parse_redis_address(std::string_view url);

// The URL with the password as "***" (for logs and describe()).
[[nodiscard]] std::string describe(const redis_address& address);
// "host:port" (IPv6 in brackets).
[[nodiscard]] std::string describe(const redis_endpoint& endpoint);

}  // namespace tunnel::cluster
