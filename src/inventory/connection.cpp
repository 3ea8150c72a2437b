#include "inventory/connection.hpp"

#include <fmt/format.h>

namespace tunnel::inventory {

core::result<ssh::connect_options> connect_options_for(const host& h, const ssh::ssh_config& config,
                                                       const ssh::client_flags& flags) {
    const std::string& text = h.connection.address ? *h.connection.address : h.name;
    auto t = ssh::parse_target(text);
    if (!t)
        return core::fail(t.error().code, fmt::format("host {}: {}", h.name, t.error().message));
    ssh::client_flags f = flags;
    // user@ and :port in the text beat -l/-p; the host's variables beat both.
    if (h.connection.user)
        f.user = h.connection.user;
    else if (t->user)
        f.user = t->user;
    if (h.connection.port)
        f.port = h.connection.port;
    else if (t->port)
        f.port = t->port;
    if (h.connection.private_key_file)
        f.identity_files.insert(f.identity_files.begin(), *h.connection.private_key_file);
    auto o = ssh::resolve_destination(config, t->host, f);
    if (!o)
        return core::fail(o.error().code, fmt::format("host {}: {}", h.name, o.error().message));
    return o;
}

}  // namespace tunnel::inventory
