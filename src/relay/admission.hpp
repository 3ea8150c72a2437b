// Admission of public requests (ARCHITECTURE §5): the checks that decide
// whether a request may go to a tunnel, in the order the proxy makes them:
//
//   check_head     431 / 413 / 400   the head as the tracker parsed it
//   check_stopping 503               the relay is shutting down
//   check_framing  400               Transfer-Encoding / Content-Length / Host
//                                    (proxy_headers.hpp: framing_problem)
//   check_route    404 / 400         Host or /t/<tenant>/<name>/ names a route
//   check_tunnel   503               a live tunnel publishes it
//   check_policy   403               its token still allows the name
//   check_rates    429 + Retry-After tenant, then route token buckets
//   check_streams  503 + Retry-After concurrent requests on the tunnel
//   check_breaker  503 + Retry-After the tunnel's circuit breaker
//
// and for tunnels: check_tenant_tunnels (attach) and check_tenant_names
// (tcpip-forward), 429 past the tenant's caps.
//
// (admit() runs the last five in order.)
// Each returns a decision value and does no I/O; rate buckets and the breaker
// are stateful (a check that passes takes a token or the half-open probe),
// and both take injectable clocks, so every decision is unit-tested
// (tests/unit/relay/admission_test.cpp). The caller counts a refusal with
// count_refusal and answers it (public_connection.hpp: send_refusal).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "pool/circuit_breaker.hpp"
#include "relay/http_tracker.hpp"
#include "relay/public_route.hpp"
#include "relay/rate_limiter.hpp"
#include "relay/relay_config.hpp"

namespace tunnel::relay {

class relay_state;
struct tunnel_entry;

enum class refusal {
    none,
    bad_request,       // 400 bad_request: a malformed head
    header_too_large,  // 431 headers_too_large
    body_too_large,    // 413 body_too_large
    shutting_down,     // 503 shutting_down
    no_route,          // 404 no_route
    bad_route,         // 400 bad_route
    tunnel_offline,    // 503 tunnel_offline
    policy,            // 403 policy
    tenant_rate,       // 429 rate_limited
    route_rate,        // 429 rate_limited
    stream_limit,      // 503 stream_limit
    circuit_open,      // 503 circuit_open
    tenant_tunnels,    // 429 tunnel_limit: an attach past the tenant's max_tunnels
    tenant_names,      // 429 name_limit: a tcpip-forward past the tenant's max_names
};

// A decision: admitted, or the error response to answer with.
struct admission {
    refusal reason = refusal::none;
    int status = 0;                        // HTTP status of a refusal
    std::string code;                      // its JSON "error"
    std::string message;                   // its JSON "message": what happened, what to do
    std::optional<long long> retry_after;  // seconds, for a Retry-After header
    // Admitted as the tunnel breaker's half-open probe (check_breaker).
    bool probe = false;

    [[nodiscard]] bool admitted() const noexcept { return reason == refusal::none; }
    // The limits_hit{limit} label of a refusal by a configured limit
    // ("header_size", "body_size", "tenant_rate", "route_rate", "streams",
    // "breaker"); empty for other decisions.
    [[nodiscard]] std::string_view limit() const noexcept;
};

// The head of a request as the tracker left it: `problem` and its detail.
[[nodiscard]] admission check_head(http_problem problem, std::string_view detail,
                                   const limits_config& limits);

[[nodiscard]] admission check_stopping(bool stopping);

// A request whose body length is ambiguous (framing_problem) is 400.
[[nodiscard]] admission check_framing(const http_head& head);

// The result of route_request(): not_found is 404, anything else 400.
[[nodiscard]] admission check_route(const core::result<public_route>& route);

// `t`: relay_state::find() for the route (may be null). Offline when absent,
// closing, or its SSH session has not started or has closed.
[[nodiscard]] admission check_tunnel(const public_route& route, const tunnel_entry* t);

// The token is checked on every request, not only at attach: expired at
// `now`, or no longer allowing the name, is 403.
[[nodiscard]] admission check_policy(const public_route& route, const tenant_policy& policy,
                                     std::chrono::system_clock::time_point now);

// Takes a token from the tenant's bucket (rate from the token's `rps`, burst
// in the configured tenant_burst/tenant_rps ratio), then from the route's
// (route_rps, route_burst). The route's is not touched when the tenant's
// refuses.
[[nodiscard]] admission check_rates(rate_source& limiter, const limits_config& limits,
                                    const public_route& route, const tenant_policy& policy);

// The tunnel's concurrent requests against its token's max_streams.
[[nodiscard]] admission check_streams(const public_route& route, const tunnel_entry& t);

// breaker.begin_attempt(); when refused, Retry-After is the rest of the
// cool-down in whole seconds plus one. An admitted probe has `probe` set:
// the proxy must settle it (exchange_outcome.hpp: breaker_ticket).
[[nodiscard]] admission check_breaker(const public_route& route, pool::circuit_breaker& breaker);

// check_tunnel, check_policy, check_rates, check_streams and check_breaker
// in that order (a refusal stops the rest: no token or probe is taken after
// it); the first refusal, or admitted.
[[nodiscard]] admission admit(relay_state& relay, const public_route& route, tunnel_entry* t,
                              std::chrono::system_clock::time_point now);

// Per-tenant caps (limits.max_tunnels_per_tenant / max_names_per_tenant,
// narrowed by the token): `tunnels` the tenant has attached or attaching,
// `names` it publishes (not counting `name` when this tunnel publishes it
// already).
[[nodiscard]] admission check_tenant_tunnels(const tenant_policy& policy, unsigned tunnels);
[[nodiscard]] admission check_tenant_names(const tenant_policy& policy, std::string_view name,
                                           unsigned names, bool already_published);

// Counts a limit that was hit (limits_hit{limit}).
void limit_hit(relay_state& relay, std::string_view which);

// Bumps the metrics for a refusal (nothing for an admission): relay_bad_requests_total
// for malformed heads and routes, relay_limits_hit_total{limit} for a limit.
void count_refusal(relay_state& relay, const admission& decision);

}  // namespace tunnel::relay
