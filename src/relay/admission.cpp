#include "relay/admission.hpp"

#include <algorithm>
#include <utility>

#include <fmt/format.h>

#include "relay/proxy_headers.hpp"
#include "relay/relay_state.hpp"

namespace tunnel::relay {

namespace {

admission refuse(refusal reason, int status, std::string code, std::string message,
                 std::optional<long long> retry_after = std::nullopt) {
    admission a;
    a.reason = reason;
    a.status = status;
    a.code = std::move(code);
    a.message = std::move(message);
    a.retry_after = retry_after;
    return a;
}

std::string label_of(const public_route& route) {
    return fmt::format("{}/{}", route.tenant, route.name);
}

}  // namespace

std::string_view admission::limit() const noexcept {
    switch (reason) {
        case refusal::header_too_large:
            return "header_size";
        case refusal::body_too_large:
            return "body_size";
        case refusal::tenant_rate:
            return "tenant_rate";
        case refusal::route_rate:
            return "route_rate";
        case refusal::stream_limit:
            return "streams";
        case refusal::circuit_open:
            return "breaker";
        case refusal::tenant_tunnels:
            return "tunnels_per_tenant";
        case refusal::tenant_names:
            return "names_per_tenant";
        default:
            return {};
    }
}

admission check_head(http_problem problem, std::string_view detail, const limits_config& limits) {
    switch (problem) {
        case http_problem::none:
            return {};
        case http_problem::header_too_large:
            return refuse(
                refusal::header_too_large, 431, "headers_too_large",
                fmt::format("the request head is larger than {} bytes", limits.max_header_bytes));
        case http_problem::body_too_large:
            return refuse(
                refusal::body_too_large, 413, "body_too_large",
                fmt::format("the request body is larger than {} bytes", limits.max_body_bytes));
        default:
            return refuse(refusal::bad_request, 400, "bad_request",
                          fmt::format("malformed HTTP request: {}", detail));
    }
}

admission check_stopping(bool stopping) {
    if (!stopping) return {};
    return refuse(refusal::shutting_down, 503, "shutting_down",
                  "the relay is shutting down; retry in a moment");
}

admission check_framing(const http_head& head) {
    auto problem = framing_problem(head);
    if (!problem) return {};
    return refuse(refusal::bad_request, 400, "bad_request",
                  fmt::format("malformed HTTP request: {}", *problem));
}

admission check_route(const core::result<public_route>& route) {
    if (route) return {};
    if (route.error().code == core::errc::not_found)
        return refuse(refusal::no_route, 404, "no_route", route.error().message);
    return refuse(refusal::bad_route, 400, "bad_route", route.error().message);
}

admission check_tunnel(const public_route& route, const tunnel_entry* t) {
    if (t && !t->closing && t->ssh && !t->ssh->closed()) return {};
    return refuse(
        refusal::tunnel_offline, 503, "tunnel_offline",
        fmt::format("no tunnel of tenant {} publishes {:?} right now: start `tunnel connect` "
                    "with --expose {}=HOST:PORT",
                    route.tenant, route.name, route.name));
}

admission check_policy(const public_route& route, const tenant_policy& policy,
                       std::chrono::system_clock::time_point now) {
    if (now < policy.expires && may_publish(policy, route.name)) return {};
    return refuse(
        refusal::policy, 403, "policy",
        fmt::format("the token of tenant {} no longer allows {:?}", route.tenant, route.name));
}

admission check_rates(rate_source& limiter, const limits_config& limits, const public_route& route,
                      const tenant_policy& policy) {
    const double tenant_ratio =
        limits.tenant_rps > 0 ? limits.tenant_burst / limits.tenant_rps : 2.0;
    auto d = limiter.acquire("tenant/" + route.tenant,
                             {policy.rps, std::max(1.0, policy.rps * tenant_ratio)});
    if (!d.allowed)
        return refuse(
            refusal::tenant_rate, 429, "rate_limited",
            fmt::format("tenant {} is over its limit of {} requests per second; retry after {} s",
                        route.tenant, policy.rps, d.retry_after_seconds()),
            d.retry_after_seconds());
    const std::string label = label_of(route);
    d = limiter.acquire("route/" + label, {limits.route_rps, std::max(1.0, limits.route_burst)});
    if (!d.allowed)
        return refuse(
            refusal::route_rate, 429, "rate_limited",
            fmt::format("{} is over its limit of {} requests per second; retry after {} s", label,
                        limits.route_rps, d.retry_after_seconds()),
            d.retry_after_seconds());
    return {};
}

admission check_streams(const public_route& route, const tunnel_entry& t) {
    if (t.active_streams < t.policy.max_streams) return {};
    return refuse(
        refusal::stream_limit, 503, "stream_limit",
        fmt::format("the tunnel for {} already carries {} concurrent requests (its limit)",
                    label_of(route), t.policy.max_streams),
        1);
}

admission check_breaker(const public_route& route, pool::circuit_breaker& breaker) {
    if (const auto attempt = breaker.begin_attempt(); attempt != pool::breaker_attempt::refused) {
        admission a;
        a.probe = attempt == pool::breaker_attempt::probe;
        return a;
    }
    const auto wait =
        std::chrono::duration_cast<std::chrono::seconds>(breaker.retry_after()).count() + 1;
    return refuse(
        refusal::circuit_open, 503, "circuit_open",
        fmt::format("the service behind {} failed {} times in a row; the relay fails fast for "
                    "{} s before trying it again",
                    label_of(route), breaker.consecutive_failures(), wait),
        wait);
}

admission admit(relay_state& relay, const public_route& route, tunnel_entry* t,
                std::chrono::system_clock::time_point now) {
    if (auto a = check_tunnel(route, t); !a.admitted()) return a;
    if (auto a = check_policy(route, t->policy, now); !a.admitted()) return a;
    if (auto a = check_rates(relay.rates(), relay.live()->config.limits, route, t->policy);
        !a.admitted())
        return a;
    if (auto a = check_streams(route, *t); !a.admitted()) return a;
    return check_breaker(route, *t->breaker);
}

admission check_tenant_tunnels(const tenant_policy& policy, unsigned tunnels) {
    if (tunnels < policy.max_tunnels) return {};
    return refuse(refusal::tenant_tunnels, 429, "tunnel_limit",
                  fmt::format("tenant {} already has {} tunnels attached, its limit; close one "
                              "(or wait for a dropped one to be noticed) and attach again",
                              policy.tenant, tunnels),
                  5);
}

admission check_tenant_names(const tenant_policy& policy, std::string_view name, unsigned names,
                             bool already_published) {
    if (already_published || names < policy.max_names) return {};
    return refuse(refusal::tenant_names, 429, "name_limit",
                  fmt::format("tenant {} already publishes {} names, its limit; {:?} was not "
                              "published (unpublish another name first)",
                              policy.tenant, names, name));
}

void limit_hit(relay_state& relay, std::string_view which) {
    relay.metrics.limits_hit.with({which}).inc();
}

void count_refusal(relay_state& relay, const admission& decision) {
    switch (decision.reason) {
        case refusal::bad_request:
        case refusal::no_route:
        case refusal::bad_route:
        case refusal::header_too_large:
        case refusal::body_too_large:
            relay.metrics.bad_requests.with({}).inc();
            break;
        case refusal::tenant_rate:
        case refusal::route_rate:
        case refusal::stream_limit:
        case refusal::circuit_open:
        case refusal::tenant_tunnels:
        case refusal::tenant_names:
        case refusal::none:
        case refusal::shutting_down:
        case refusal::tunnel_offline:
        case refusal::policy:
            break;
    }
    if (const auto which = decision.limit(); !which.empty()) limit_hit(relay, which);
}

}  // namespace tunnel::relay
