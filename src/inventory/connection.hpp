// From an inventory host to the connect options the ssh layer uses.
#pragma once

#include "core/error.hpp"
#include "inventory/inventory.hpp"
#include "ssh/connect_options.hpp"
#include "ssh/destination.hpp"
#include "ssh/ssh_config.hpp"

namespace tunnel::inventory {

// The host's ansible_user/ansible_port/ansible_ssh_private_key_file beat the
// command line's -l/-p/--private-key (as in Ansible), which beat ~/.ssh/config.
// The address (ansible_host, else the host's name) is looked up in ssh_config
// exactly like exec's TARGET, so ssh_config aliases, HostName, ProxyJump and
// IdentityFile apply. Ad-hoc hosts ([user@]host[:port]) resolve as exec does.
[[nodiscard]] core::result<ssh::connect_options> connect_options_for(
    const host& h, const ssh::ssh_config& config, const ssh::client_flags& flags);

}  // namespace tunnel::inventory
