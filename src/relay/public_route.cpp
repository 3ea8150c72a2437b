#include "relay/public_route.hpp"

#include <fmt/format.h>

#include "core/ascii.hpp"

namespace tunnel::relay {

namespace {

char lower(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string to_lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = lower(c);
    return out;
}

using core::iequals;

// "host:port" -> "host", "[::1]:80" -> "::1"; a trailing dot (FQDN form) is dropped.
std::string_view strip_port(std::string_view host) noexcept {
    if (!host.empty() && host.front() == '[') {
        auto close = host.find(']');
        return close == std::string_view::npos ? host : host.substr(1, close - 1);
    }
    if (auto colon = host.rfind(':'); colon != std::string_view::npos && host.find(':') == colon)
        host = host.substr(0, colon);
    if (!host.empty() && host.back() == '.') host.remove_suffix(1);
    return host;
}

}  // namespace

std::string_view to_string(routing_mode mode) noexcept {
    switch (mode) {
        case routing_mode::host:
            return "host";
        case routing_mode::path:
            return "path";
        case routing_mode::both:
            return "both";
    }
    return "host";
}

core::result<routing_mode> parse_routing_mode(std::string_view text) {
    for (auto m : {routing_mode::host, routing_mode::path, routing_mode::both})
        if (iequals(text, to_string(m))) return m;
    return core::fail(core::errc::invalid_argument,
                      fmt::format("\"{}\" is not a routing mode: write host (each service its own "
                                  "origin, needs domain), path (/t/<tenant>/<name>/, one shared "
                                  "origin) or both",
                                  text));
}

bool valid_label(std::string_view label) noexcept {
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    if (label.find("--") != std::string_view::npos) return false;
    for (char c : label)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    return true;
}

bool valid_tenant_glob(std::string_view glob) noexcept {
    if (glob.empty() || glob.size() > 63) return false;
    for (char c : glob)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '*' || c == '?'))
            return false;
    return true;
}

core::result<std::string> normalize_label(std::string_view label, std::string_view what) {
    auto out = to_lower(label);
    auto bad = [&](std::string_view why) {
        return core::fail(core::errc::invalid_argument,
                          fmt::format("{} \"{}\": {}", what, label, why));
    };
    if (out.empty()) return bad("must not be empty");
    if (out.size() > 63) return bad("is longer than 63 characters");
    for (char c : out)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return bad("only a-z, 0-9 and '-' are allowed");
    if (out.front() == '-' || out.back() == '-') return bad("must not start or end with '-'");
    if (out.find("--") != std::string::npos)
        return bad("must not contain \"--\" (it separates name and tenant)");
    return out;
}

std::optional<core::result<public_route>> route_by_host(std::string_view host,
                                                        std::string_view domain,
                                                        std::string_view target) {
    if (domain.empty()) return std::nullopt;
    auto h = strip_port(host);
    if (h.size() <= domain.size() + 1) return std::nullopt;
    auto suffix = h.substr(h.size() - domain.size());
    if (!iequals(suffix, domain) || h[h.size() - domain.size() - 1] != '.') return std::nullopt;
    auto sub = h.substr(0, h.size() - domain.size() - 1);
    auto sep = sub.find("--");
    if (sub.find('.') != std::string_view::npos || sep == std::string_view::npos)
        return core::result<public_route>(core::fail(
            core::errc::invalid_argument,
            fmt::format("host \"{}\" is not of the form <name>--<tenant>.{}", h, domain)));
    auto name = normalize_label(sub.substr(0, sep), "service name");
    if (!name) return core::result<public_route>(tl::unexpected(name.error()));
    auto tenant = normalize_label(sub.substr(sep + 2), "tenant");
    if (!tenant) return core::result<public_route>(tl::unexpected(tenant.error()));
    std::string t = target.empty() ? std::string("/") : std::string(target);
    return core::result<public_route>(
        public_route{std::move(*tenant), std::move(*name), std::move(t), true});
}

std::optional<core::result<public_route>> route_by_path(std::string_view target) {
    constexpr std::string_view prefix = "/t/";
    if (target.substr(0, prefix.size()) != prefix) return std::nullopt;
    auto rest = target.substr(prefix.size());
    auto query_at = rest.find('?');
    auto path = rest.substr(0, query_at);
    auto query = query_at == std::string_view::npos ? std::string_view{} : rest.substr(query_at);

    auto slash1 = path.find('/');
    if (slash1 == std::string_view::npos)
        return core::result<public_route>(core::fail(
            core::errc::invalid_argument,
            fmt::format("path routing needs /t/<tenant>/<name>/...; \"{}\" has no service name",
                        target)));
    auto tenant = normalize_label(path.substr(0, slash1), "tenant");
    if (!tenant) return core::result<public_route>(tl::unexpected(tenant.error()));
    auto after = path.substr(slash1 + 1);
    auto slash2 = after.find('/');
    auto name = normalize_label(after.substr(0, slash2), "service name");
    if (!name) return core::result<public_route>(tl::unexpected(name.error()));

    std::string out =
        slash2 == std::string_view::npos ? std::string("/") : std::string(after.substr(slash2));
    out.append(query);
    return core::result<public_route>(
        public_route{std::move(*tenant), std::move(*name), std::move(out), false});
}

core::result<public_route> route_request(std::string_view host, std::string_view target,
                                         std::string_view domain) {
    if (auto r = route_by_host(host, domain, target)) return std::move(*r);
    if (auto r = route_by_path(target)) return std::move(*r);
    return core::fail(
        core::errc::not_found,
        domain.empty()
            ? fmt::format("no tunnel route in \"{}\"; use /t/<tenant>/<name>/...", target)
            : fmt::format("no tunnel route for host \"{}\"; use <name>--<tenant>.{} or "
                          "/t/<tenant>/<name>/...",
                          strip_port(host), domain));
}

core::result<public_route> route_request(std::string_view host, std::string_view target,
                                         std::string_view domain, routing_mode mode) {
    if (routes_by_host(mode))
        if (auto r = route_by_host(host, domain, target)) return std::move(*r);
    auto by_path = route_by_path(target);
    if (by_path && routes_by_path(mode)) return std::move(*by_path);
    if (by_path && *by_path)
        return core::fail(core::errc::not_found,
                          fmt::format("path routing is off on this relay (routing: host): each "
                                      "service has its own origin; use {}--{}.{}",
                                      (*by_path)->name, (*by_path)->tenant, domain));
    if (!routes_by_host(mode))
        return core::fail(
            core::errc::not_found,
            fmt::format("no tunnel route in \"{}\"; use /t/<tenant>/<name>/...", target));
    if (!routes_by_path(mode))
        return core::fail(core::errc::not_found,
                          fmt::format("no tunnel route for host \"{}\"; use <name>--<tenant>.{}",
                                      strip_port(host), domain));
    return route_request(host, target, domain);
}

}  // namespace tunnel::relay
