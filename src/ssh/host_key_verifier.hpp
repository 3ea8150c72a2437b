// Host-key policy over known_hosts (StrictHostKeyChecking yes / accept-new / no).
#pragma once

#include <string>

#include "core/error.hpp"
#include "ssh/connect_options.hpp"
#include "ssh/handles.hpp"
#include "ssh/known_hosts.hpp"

namespace tunnel::ssh {

// Checks the server's key against the user and global known_hosts files under
// opts.host_keys. Returns the key's SHA256 fingerprint when it is accepted;
// host_key_unknown / host_key_changed errors name the fingerprint and the file
// (and line) to fix. With accept-new an unknown key is appended to the first
// user known_hosts file.
[[nodiscard]] core::result<std::string> check_host_key(const connect_options& opts,
                                                       ssh_key server_key);
// The same against files loaded already (load_known_hosts): a connect reads
// them once, before its key exchange, instead of once per check after it.
[[nodiscard]] core::result<std::string> check_host_key(const connect_options& opts,
                                                       ssh_key server_key, const known_hosts& kh);

// The user and global known_hosts files of `opts`, in the order they are searched.
[[nodiscard]] known_hosts load_known_hosts(const connect_options& opts);

// Host-key algorithms ordered so that types already known for this host come
// first (as OpenSSH does): otherwise a server with several keys could offer
// one we have never seen and fail a strict check.
[[nodiscard]] std::string preferred_host_key_algorithms(const connect_options& opts);
[[nodiscard]] std::string preferred_host_key_algorithms(const connect_options& opts,
                                                        const known_hosts& kh);

// "SHA256:..." for a key.
[[nodiscard]] std::string fingerprint(ssh_key key);

}  // namespace tunnel::ssh
