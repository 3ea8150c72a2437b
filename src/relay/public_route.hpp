// Public routing of the relay (ARCHITECTURE §5): which tenant's which
// published name an incoming HTTP request is for.
//
//   Host routing:  Host: <name>--<tenant>.<domain>[:port]   target kept as is
//   Path routing:  /t/<tenant>/<name>/rest?query            target becomes /rest?query
//
// Names and tenants are DNS labels (see valid_label); both forms are
// case-insensitive and yield lower-case labels.
//
// Under path routing every tenant's service shares the relay's one browser
// origin (cookies, service workers, same-site requests); host routing gives
// each published name its own origin. The relay's `routing` key chooses which
// forms it serves (routing_mode).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace tunnel::relay {

// A tenant or service name: 1..63 characters of [a-z0-9-], not starting or
// ending with '-' and without "--" (reserved as the separator in
// `<name>--<tenant>.<domain>`). Upper case is refused here; callers that
// accept user input lower-case it first (see normalize_label).
[[nodiscard]] bool valid_label(std::string_view label) noexcept;

// A pattern of tenants in a policy list (`agent_forwarding.tenants`,
// `queue.trusted_tenants`): 1..63 characters of [a-z0-9-*?].
[[nodiscard]] bool valid_tenant_glob(std::string_view glob) noexcept;

// Lower-cases `label` and checks it; the message says what was wrong, e.g.
//   service name "my_app": only a-z, 0-9 and '-' are allowed
// `what` names the thing in the message ("tenant", "service name").
[[nodiscard]] core::result<std::string> normalize_label(std::string_view label,
                                                        std::string_view what);

// Which routing forms the relay serves (the config's `routing` key).
enum class routing_mode {
    host,  // only Host: <name>--<tenant>.<domain>; /t/... is 404
    path,  // only /t/<tenant>/<name>/...; tenants share one origin
    both,  // host first, then path
};

[[nodiscard]] std::string_view to_string(routing_mode mode) noexcept;
// "host", "path" or "both" (case-insensitive); the message lists them.
[[nodiscard]] core::result<routing_mode> parse_routing_mode(std::string_view text);
[[nodiscard]] constexpr bool routes_by_host(routing_mode m) noexcept {
    return m != routing_mode::path;
}
[[nodiscard]] constexpr bool routes_by_path(routing_mode m) noexcept {
    return m != routing_mode::host;
}

struct public_route {
    std::string tenant;
    std::string name;
    std::string target;  // request target to send to the origin ("/..." with query)
    bool by_host = false;
};

// Host routing. `host` is the Host header value (port stripped here,
// "[v6]:port" understood); `domain` the relay's configured domain. Returns
// nullopt when the host is not a subdomain of `domain` (the caller may then
// try path routing); an error when it is but the labels are invalid.
[[nodiscard]] std::optional<core::result<public_route>> route_by_host(std::string_view host,
                                                                      std::string_view domain,
                                                                      std::string_view target);

// Path routing of an origin-form request target. Returns nullopt when the
// target does not start with "/t/"; an error when it does but the tenant or
// name is missing or invalid. "/t/a/b" and "/t/a/b?x" route to "/" and "/?x".
[[nodiscard]] std::optional<core::result<public_route>> route_by_path(std::string_view target);

// Host routing first (when `domain` is non-empty), then path routing.
// errc::not_found when neither form applies, errc::invalid_argument for a
// malformed route; messages fit a 404/400 JSON body.
[[nodiscard]] core::result<public_route> route_request(std::string_view host,
                                                       std::string_view target,
                                                       std::string_view domain);

// Only the forms `mode` enables. Under routing_mode::host a /t/... target is
// errc::not_found, and the message names the host-routed URL to use instead;
// under routing_mode::path the Host header is not looked at.
[[nodiscard]] core::result<public_route> route_request(std::string_view host,
                                                       std::string_view target,
                                                       std::string_view domain, routing_mode mode);

}  // namespace tunnel::relay
