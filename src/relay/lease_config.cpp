#include "relay/lease_config.hpp"

#include <fmt/format.h>

#include "core/duration.hpp"
#include "core/glob.hpp"
#include "core/log_text.hpp"
#include "relay/public_route.hpp"

namespace tunnel::relay {

namespace {

// An HTTP field name (RFC 9110 token).
bool valid_field_name(std::string_view s) {
    if (s.empty() || s.size() > 64) return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    return true;
}

}  // namespace

std::string_view to_string(queue_class c) noexcept {
    switch (c) {
        case queue_class::high:
            return "high";
        case queue_class::low:
            return "low";
        default:
            return "normal";
    }
}

std::optional<queue_class> parse_queue_class(std::string_view text) noexcept {
    if (text == "high") return queue_class::high;
    if (text == "normal") return queue_class::normal;
    if (text == "low") return queue_class::low;
    return std::nullopt;
}

void read_lease_config(core::yaml_reader& r, const YAML::Node& node, const std::string& path,
                       lease_config& out) {
    if (!r.expect_map(node, path, {"grace"})) return;
    if (!node["grace"]) return;
    const std::string key = path + ".grace";
    auto d = r.duration(node["grace"], key);
    if (!d) return;
    if (d->count() < 0 || *d > std::chrono::hours(24))
        r.error(key,
                "must be from 0 (no leases: a dropped tunnel's names are released at once) to "
                "24h, e.g. 60s");
    else
        out.grace = *d;
}

void read_queue_config(core::yaml_reader& r, const YAML::Node& node, const std::string& path,
                       queue_config& out) {
    if (!r.expect_map(node, path,
                      {"max_requests", "max_bytes", "max_wait", "priority_header",
                       "trusted_tenants", "routes", "state_file"}))
        return;
    if (node["state_file"])
        if (auto s = r.string(node["state_file"], path + ".state_file")) {
            if (s->empty())
                r.error(path + ".state_file",
                        "must be a file path, e.g. /var/lib/tunnel/queue.db (leave the key out "
                        "to answer waiting requests 503 on a shutdown instead of keeping them)");
            else
                out.state_file = *s;
        }
    if (node["max_requests"])
        if (auto v = r.integer(node["max_requests"], path + ".max_requests", 0, 100000))
            out.max_requests = static_cast<unsigned>(*v);
    if (node["max_bytes"])
        if (auto v = r.integer(node["max_bytes"], path + ".max_bytes", 1024, 1LL << 34))
            out.max_bytes = static_cast<std::size_t>(*v);
    if (node["max_wait"]) {
        const std::string key = path + ".max_wait";
        if (auto d = r.duration(node["max_wait"], key)) {
            if (d->count() <= 0 || *d > std::chrono::minutes(10))
                r.error(key,
                        "must be more than 0 and at most 10m, e.g. 30s (callers wait this long "
                        "for a leased name's tunnel; set queue.max_requests: 0 to turn the queue "
                        "off)");
            else
                out.max_wait = *d;
        }
    }
    if (node["priority_header"]) {
        const std::string key = path + ".priority_header";
        if (auto s = r.string(node["priority_header"], key)) {
            if (!valid_field_name(*s))
                r.error(key, fmt::format("\"{}\" is not an HTTP field name (1-64 of A-Z a-z 0-9 - "
                                         "_), e.g. Tunnel-Priority",
                                         core::log_text(*s, 64)));
            else
                out.priority_header = *s;
        }
    }
    if (node["trusted_tenants"]) {
        const std::string key = path + ".trusted_tenants";
        if (auto list = r.string_list(node["trusted_tenants"], key))
            for (const auto& t : *list) {
                if (!valid_tenant_glob(t))
                    r.error(key, fmt::format("\"{}\" is not a tenant name or glob (1-63 of a-z "
                                             "0-9 - * ?), e.g. acme or batch-*",
                                             core::log_text(t, 64)));
                else
                    out.trusted_tenants.push_back(t);
            }
    }
    if (auto routes = node["routes"]) {
        const std::string key = path + ".routes";
        if (!routes.IsMap()) {
            r.error(key, "must be a map of tenant/name: high|normal|low, e.g. {acme/api: high}");
            return;
        }
        for (const auto& kv : routes) {
            const std::string route = kv.first.IsScalar() ? kv.first.Scalar() : std::string();
            const auto slash = route.find('/');
            const std::string entry = key + "." + core::log_text(route, 130);
            if (slash == std::string::npos || !valid_label(route.substr(0, slash)) ||
                !valid_label(route.substr(slash + 1))) {
                r.error(entry, "must be tenant/name (two DNS labels, lower case), e.g. acme/api");
                continue;
            }
            auto value = r.string(kv.second, entry);
            if (!value) continue;
            auto c = parse_queue_class(*value);
            if (!c) {
                r.error(entry, fmt::format("\"{}\" is not a class: write high, normal or low",
                                           core::log_text(*value, 32)));
                continue;
            }
            out.routes[route] = *c;
        }
    }
}

std::vector<std::string> describe(const lease_config& leases, const queue_config& queue) {
    std::vector<std::string> out;
    out.push_back(leases.grace.count() == 0
                      ? std::string("leases.grace: 0 (no leases: names are released at once)")
                      : fmt::format("leases.grace: {}", core::format_duration(leases.grace)));
    out.push_back(fmt::format("queue.max_requests: {}{}", queue.max_requests,
                              queue.max_requests == 0 ? " (no queue)" : ""));
    out.push_back(fmt::format("queue.max_bytes: {}", queue.max_bytes));
    out.push_back(fmt::format("queue.max_wait: {}", core::format_duration(queue.max_wait)));
    out.push_back(fmt::format("queue.priority_header: {}", queue.priority_header));
    out.push_back(fmt::format("queue.trusted_tenants: {}",
                              queue.trusted_tenants.empty()
                                  ? std::string("(none: the header is ignored)")
                                  : fmt::format("{}", fmt::join(queue.trusted_tenants, ", "))));
    for (const auto& [route, c] : queue.routes)
        out.push_back(fmt::format("queue.routes.{}: {}", route, to_string(c)));
    out.push_back(fmt::format("queue.state_file: {}",
                              queue.state_file.empty()
                                  ? std::string("(none: waiting requests get 503 on a shutdown)")
                                  : queue.state_file));
    return out;
}

queue_class class_of(const queue_config& config, std::string_view tenant, std::string_view name,
                     const std::string* header_value) {
    if (header_value)
        for (const auto& g : config.trusted_tenants)
            if (core::glob_match(g, tenant)) {
                if (auto c = parse_queue_class(*header_value)) return *c;
                break;
            }
    if (auto it = config.routes.find(fmt::format("{}/{}", tenant, name)); it != config.routes.end())
        return it->second;
    return queue_class::normal;
}

}  // namespace tunnel::relay
