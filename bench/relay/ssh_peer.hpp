// The peer of bench/relay's http and cost parts: `ssh -N -L` to an OpenSSH
// sshd (tests/support/sshd_fixture.hpp), forwarding a local port to a
// loopback target, with its default cipher.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "bench_support.hpp"
#include "support/net.hpp"
#include "support/sshd_fixture.hpp"

namespace tunnel::bench {

struct ssh_forward_peer {
    test::sshd_fixture sshd;
    std::uint16_t port = 0;  // ssh -L's local port
};

// Starts sshd and, in `procs` (log "ssh-L.log"), `ssh -N -L
// 127.0.0.1:PORT:127.0.0.1:TARGET` through it; nullopt (with a message on
// stderr) when either cannot start. The caller waits for the port to serve.
inline std::optional<ssh_forward_peer> start_ssh_forward(children& procs, std::uint16_t target) {
    test::sshd_options so;
    so.max_sessions = 64;
    auto sshd = test::sshd_fixture::start(so);
    if (!sshd) {
        fmt::print(stderr, "cannot start sshd: {}\n", sshd.error().message);
        return std::nullopt;
    }
    auto port = test::unused_port();
    if (!port) {
        fmt::print(stderr, "no free local port for ssh -L: {}\n", port.error().message);
        return std::nullopt;
    }
    const std::vector<std::string> argv{"ssh",
                                        "-F",
                                        "/dev/null",
                                        "-N",
                                        "-p",
                                        std::to_string(sshd->port()),
                                        "-i",
                                        sshd->client_key_path(),
                                        "-o",
                                        "UserKnownHostsFile=" + sshd->known_hosts_path(),
                                        "-o",
                                        "GlobalKnownHostsFile=/dev/null",
                                        "-o",
                                        "BatchMode=yes",
                                        "-o",
                                        "ExitOnForwardFailure=yes",
                                        "-L",
                                        fmt::format("127.0.0.1:{}:127.0.0.1:{}", *port, target),
                                        "root@127.0.0.1"};
    if (!procs.start(argv, "ssh-L.log")) return std::nullopt;
    return ssh_forward_peer{std::move(*sshd), *port};
}

}  // namespace tunnel::bench
