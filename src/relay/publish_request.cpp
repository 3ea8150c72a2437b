#include "relay/publish_request.hpp"

#include <memory>
#include <vector>

#include <fmt/format.h>

#include "relay/public_route.hpp"

namespace tunnel::relay {

namespace {

using core::errc;

core::result<publish_request> bad(std::string_view name, std::string message) {
    return core::fail(
        errc::invalid_argument,
        name.empty() ? std::move(message) : fmt::format("publishing {}: {}", name, message));
}

// A parameter name quoted in a message: short and printable.
std::string shown(std::string_view v) {
    std::string out;
    for (char c : v.substr(0, 24)) out += (c >= 0x20 && c < 0x7f && c != '"') ? c : '?';
    if (v.size() > 24) out += "...";
    return out;
}

}  // namespace

core::result<publish_request> parse_publish_request(std::string_view bind_address) {
    if (bind_address.size() > max_bind_address_bytes)
        return bad("",
                   fmt::format("the bind address is longer than {} bytes", max_bind_address_bytes));
    const auto first = bind_address.find(';');
    auto name = normalize_label(bind_address.substr(0, first), "service name");
    if (!name) return tl::unexpected(name.error());
    publish_request out;
    out.name = std::move(*name);
    if (first == std::string_view::npos) return out;

    std::optional<access_mode> mode;
    std::optional<ip_allow_list> ips;
    std::vector<htpasswd_entry> users;
    auto rest = bind_address.substr(first + 1);
    while (true) {
        const auto semi = rest.find(';');
        const auto param = rest.substr(0, semi);
        const auto eq = param.find('=');
        if (eq == std::string_view::npos || eq == 0)
            return bad(out.name,
                       "each parameter after the name is key=value (access=, ip=, user=)");
        const auto key = param.substr(0, eq);
        const auto value = param.substr(eq + 1);
        if (key == "access") {
            if (mode) return bad(out.name, "access= is given twice");
            auto m = parse_access_mode(value);
            if (!m) return bad(out.name, "access=" + m.error().message);
            mode = *m;
        } else if (key == "ip") {
            if (ips) return bad(out.name, "ip= is given twice; list the networks comma-separated");
            auto list = ip_allow_list::parse_list(value);
            if (!list) return bad(out.name, "ip=: " + list.error().message);
            ips = std::move(*list);
        } else if (key == "user") {
            if (users.size() >= max_publish_users)
                return bad(out.name, fmt::format("more than {} users; keep a larger list in the "
                                                 "relay's config (htpasswd_file)",
                                                 max_publish_users));
            const auto colon = value.find(':');
            if (colon == std::string_view::npos) return bad(out.name, "user= is user:hash");
            users.push_back(
                {std::string(value.substr(0, colon)), std::string(value.substr(colon + 1))});
        } else {
            return bad(out.name, fmt::format("unknown parameter \"{}\" (this relay knows access=, "
                                             "ip= and user=)",
                                             shown(key)));
        }
        if (semi == std::string_view::npos) break;
        rest.remove_prefix(semi + 1);
    }
    if (!mode) return bad(out.name, "ip= and user= need access= (access=ip, access=basic)");
    access_policy policy;
    policy.mode = *mode;
    if (ips && *mode != access_mode::ip) return bad(out.name, "ip= is for access=ip only");
    if (!users.empty() && *mode != access_mode::basic)
        return bad(out.name, "user= is for access=basic only");
    if (*mode == access_mode::ip) {
        if (!ips) return bad(out.name, "access=ip needs ip=CIDR,... (the networks to allow)");
        policy.allow_ips = std::move(*ips);
    }
    if (*mode == access_mode::basic) {
        if (users.empty()) return bad(out.name, "access=basic needs user=USER:HASH entries");
        auto list = htpasswd::from_entries(std::move(users), "user=");
        if (!list) return bad(out.name, list.error().message);
        policy.users = std::make_shared<const htpasswd>(std::move(*list));
    }
    out.access = std::move(policy);
    return out;
}

std::string encode_publish_request(std::string_view name,
                                   const std::optional<access_policy>& access) {
    std::string out(name);
    if (!access) return out;
    out += ";access=";
    out += to_string(access->mode);
    if (access->mode == access_mode::ip) out += ";ip=" + access->allow_ips.to_string();
    if (access->mode == access_mode::basic && access->users)
        for (const auto& e : access->users->entries()) out += ";user=" + e.user + ":" + e.hash;
    return out;
}

core::result<access_policy> resolve_access(const publish_request& request,
                                           access_modes allowed_by_token,
                                           const access_policy* configured) {
    if (configured) {
        if (request.access && !(*request.access == *configured))
            return core::fail(
                errc::permission_denied,
                fmt::format("the relay's configuration sets access {} for {}; publish it "
                            "without --access (the operator decides)",
                            configured->describe(), request.name));
        return *configured;
    }
    if (request.access) {
        if (!allowed_by_token.contains(request.access->mode))
            return core::fail(
                errc::permission_denied,
                fmt::format("the token does not allow access {} (it allows: {}); mint one "
                            "with --access {} or publish {} with one it allows",
                            to_string(request.access->mode), allowed_by_token.to_string(),
                            to_string(request.access->mode), request.name));
        if (auto ok = validate(*request.access); !ok) return tl::unexpected(ok.error());
        return *request.access;
    }
    if (!allowed_by_token.contains(access_mode::public_))
        return core::fail(errc::permission_denied,
                          fmt::format("the token does not allow public names; publish {} with "
                                      "--access and one of: {}",
                                      request.name, allowed_by_token.to_string()));
    return access_policy{};
}

}  // namespace tunnel::relay
