// Turns a link's target, options and transports into one ssh::connect_options
// per transport, resolved through ssh_config like `tunnel exec` resolves its
// TARGET: `options` act as `-o Key=Value`, a jump transport as
// `-o ProxyJump=VIA`, a command transport as `-o ProxyCommand=COMMAND` (with
// %h %p %r %n expanded), http_connect as a direct connection through the
// proxy's CONNECT. The manager never prompts: BatchMode is forced on.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "link/link_config.hpp"
#include "ssh/connect_options.hpp"
#include "ssh/destination.hpp"

namespace tunnel::link {

struct resolved_transport {
    transport_config config;
    std::optional<ssh::connect_options> options;  // nullopt: not supported (see why)
    std::string unsupported;
};

// `base` carries -F and any -o given to `tunnel up` (they win over the file's options).
[[nodiscard]] core::result<std::vector<resolved_transport>> resolve_transports(
    const link_config& link, const ssh::client_flags& base, const ssh::resolve_context& ctx);

}  // namespace tunnel::link
