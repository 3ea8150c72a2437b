// The peer of bench/relay's http and cost parts: `ssh -N -L` to an OpenSSH
// sshd (tests/support/sshd_fixture.hpp), forwarding a local port to a
// loopback target, with its default cipher.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "support/sshd_fixture.hpp"

namespace tunnel::bench {

// argv of `ssh -N -L 127.0.0.1:LOCAL:127.0.0.1:TARGET` through `sshd`.
inline std::vector<std::string> ssh_forward_argv(const test::sshd_fixture& sshd,
                                                 std::uint16_t local, std::uint16_t target) {
    return {"ssh",
            "-F",
            "/dev/null",
            "-N",
            "-p",
            std::to_string(sshd.port()),
            "-i",
            sshd.client_key_path(),
            "-o",
            "UserKnownHostsFile=" + sshd.known_hosts_path(),
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ExitOnForwardFailure=yes",
            "-L",
            fmt::format("127.0.0.1:{}:127.0.0.1:{}", local, target),
            "root@127.0.0.1"};
}

}  // namespace tunnel::bench
