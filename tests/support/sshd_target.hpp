// The libtunnel connect options that reach an sshd_fixture with its client
// key only (no agent, no ~/.ssh) and its known_hosts, strictly: for tests that
// use ssh::session directly rather than the CLI.
#pragma once

#include <chrono>

#include "ssh/connect_options.hpp"
#include "support/sshd_fixture.hpp"

namespace tunnel::test {

inline ssh::connect_options target_of(const sshd_fixture& sshd) {
    ssh::connect_options o;
    o.host = "127.0.0.1";
    o.port = sshd.port();
    o.user = "root";
    o.use_agent = false;
    o.identity_files = {sshd.client_key_path()};
    o.skip_missing_identities = false;
    o.password_authentication = false;
    o.batch_mode = true;
    o.host_keys = ssh::host_key_policy::strict;
    o.user_known_hosts_files = {sshd.known_hosts_path()};
    o.global_known_hosts_files = {};
    o.connect_timeout = std::chrono::seconds(5);
    return o;
}

}  // namespace tunnel::test
