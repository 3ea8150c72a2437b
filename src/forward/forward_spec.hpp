// What the user asked for with -L, -R and -D, parsed the way OpenSSH reads
// them (ssh(1)): [bind_address:]port:host:hostport, Unix-socket paths where
// OpenSSH allows them, IPv6 addresses in brackets.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace tunnel::forward {

enum class forward_kind { local, remote, dynamic };

// A TCP address (host + port) or, when `path` is set, a Unix-domain socket.
struct endpoint {
    std::string host;  // empty: the default for the side (see forward_spec)
    uint16_t port = 0;
    std::string path;

    [[nodiscard]] bool is_unix() const noexcept { return !path.empty(); }
    // "host:port", "[v6]:port" or the path.
    [[nodiscard]] std::string to_string() const;
};

struct forward_spec {
    forward_kind kind = forward_kind::local;
    // Where connections are accepted: on this machine for -L/-D, on the
    // server for -R. An empty host means loopback for -L/-D ("localhost" as
    // OpenSSH's GatewayPorts=no) and the server's choice for -R; "*" means
    // every interface.
    endpoint listen;
    // Where accepted connections go: seen from the server for -L, from this
    // machine for -R; unused for -D (SOCKS decides).
    endpoint target;
    std::string text;  // as typed, for messages: "-L 8080:db:5432"

    // "-L 127.0.0.1:8080 -> db:5432"
    [[nodiscard]] std::string describe() const;
};

[[nodiscard]] std::string_view flag_of(forward_kind kind) noexcept;

// Parses the argument of -L, -R or -D. Fails with invalid_argument and a
// message that quotes the spec and shows the expected form.
[[nodiscard]] core::result<forward_spec> parse_forward_spec(forward_kind kind,
                                                            std::string_view text);

// A local listener on a port below 1024 needs root (as ssh(1) says
// "Privileged ports can only be forwarded by root"). `uid` is injectable
// for tests; callers pass ::geteuid().
[[nodiscard]] core::result<void> check_privileged_port(const forward_spec& spec, uid_t uid);

}  // namespace tunnel::forward
