// How a publisher tells the relay who may call a name: the access mode rides
// in the bind address of the SSH `tcpip-forward` request that publishes the
// name (RFC 4254 §7.1), so a name and its access arrive in one message and a
// name is never live, even briefly, with less protection than asked for.
//
//   bind_address = name *( ";" param )
//   param        = "access=" mode               ; public | token | basic | ip; once
//                / "ip=" cidr *( "," cidr )     ; with access=ip only; once; <= 256
//                / "user=" user ":" hash        ; with access=basic only; 1..64 times
//
//   "llm"                                    the relay's default for the name
//   "llm;access=token"
//   "llm;access=ip;ip=10.0.0.0/8,2001:db8::/32"
//   "llm;access=basic;user=alice:$y$j9T$...;user=bob:$2b$10$..."
//
// Anything else (an unknown or repeated parameter, parameters that do not fit
// the mode, a weak or costly hash) refuses the publish: a relay never
// publishes a name more openly than asked. Relays from before visitor access
// refuse every bind address that is not a bare name, for the same reason.
// Plain OpenSSH can ask too: `ssh -R 'llm;access=token:80:127.0.0.1:11434'`
// (IPv6 networks contain ':', which ssh's -R syntax cannot carry).
//
// The relay calls parse_publish_request on the address of each tcpip-forward,
// then resolve_access with the tunnel token's `access` claim and the relay
// config's entry for the name, and publishes parsed.name with the result.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "relay/access_mode.hpp"
#include "relay/visitor_access.hpp"

namespace tunnel::relay {

struct publish_request {
    std::string name;                     // lower-cased, a valid label
    std::optional<access_policy> access;  // absent: no access= given
};

inline constexpr std::size_t max_bind_address_bytes = 16 * 1024;
inline constexpr std::size_t max_publish_users = 64;

// Parses and checks a tcpip-forward bind address (see the grammar above).
// Messages name what was wrong without echoing hashes.
[[nodiscard]] core::result<publish_request> parse_publish_request(std::string_view bind_address);

// The bind address `tunnel connect` sends for `name` (the name alone when
// `access` is absent). parse_publish_request(encode_publish_request(n, a))
// gives back {n, a} for every valid policy.
[[nodiscard]] std::string encode_publish_request(std::string_view name,
                                                 const std::optional<access_policy>& access);

// The access a name is published with:
//  * the relay config sets one for the name (`configured`): that one; a
//    request asking for anything else is refused (the operator decides);
//  * else the request's access=, which the token's `access` claim must allow;
//  * else public, if the token allows it; otherwise refused with a message
//    that lists the modes the token allows.
[[nodiscard]] core::result<access_policy> resolve_access(const publish_request& request,
                                                         access_modes allowed_by_token,
                                                         const access_policy* configured);

}  // namespace tunnel::relay
