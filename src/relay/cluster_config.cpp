#include "relay/cluster_config.hpp"

#include <charconv>
#include <optional>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "core/log_text.hpp"

namespace tunnel::relay {

namespace {

using core::line_of;

bool valid_node_name(const std::string& s) {
    if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    return true;
}

// HOST:PORT or [V6]:PORT, port 1-65535, a host without blanks or '/'.
std::optional<std::pair<std::string, std::uint16_t>> parse_cluster_address(std::string_view text) {
    std::string_view host, port_text;
    if (text.starts_with('[')) {
        auto close = text.find(']');
        if (close != std::string_view::npos && close + 1 < text.size() && text[close + 1] == ':') {
            host = text.substr(1, close - 1);
            port_text = text.substr(close + 2);
        }
    } else if (auto colon = text.rfind(':'); colon != std::string_view::npos) {
        host = text.substr(0, colon);
        port_text = text.substr(colon + 1);
        if (host.find(':') != std::string_view::npos) host = {};
    }
    unsigned port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    const bool host_ok = !host.empty() && host.find_first_of(" \t/") == std::string_view::npos;
    if (!host_ok || port_text.empty() || ec != std::errc() ||
        end != port_text.data() + port_text.size() || port == 0 || port > 65535)
        return std::nullopt;
    return std::pair{std::string(host), static_cast<std::uint16_t>(port)};
}

std::string cluster_host_port(const std::string& host, std::uint16_t port) {
    if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
    return fmt::format("{}:{}", host, port);
}

}  // namespace

std::string cluster_config::internal_address() const {
    if (!advertise_host.empty()) return cluster_host_port(advertise_host, advertise_port);
    return cluster_host_port(internal_host, internal_port);
}

void read_cluster_config(core::yaml_reader& r, const YAML::Node& node, const std::string& path,
                         std::optional<cluster_config>& out) {
    if (!node || node.IsNull()) {
        r.error(path,
                "is empty; write redis, node, internal_listen and secret_file, or leave out "
                "cluster: for a single relay");
        return;
    }
    if (!r.expect_map(node, path, {"redis", "node", "internal_listen", "advertise", "secret_file"}))
        return;
    cluster_config c;
    bool ok = true;
    auto required = [&](const char* key) -> std::optional<std::string> {
        const std::string key_path = path + "." + key;
        if (!node[key]) {
            r.error(key_path, fmt::format("is required{}", line_of(node)));
            ok = false;
            return std::nullopt;
        }
        auto s = r.string(node[key], key_path);
        if (!s) {
            ok = false;
            return std::nullopt;
        }
        if (s->empty()) {
            r.error(key_path, fmt::format("must not be empty{}", line_of(node[key])));
            ok = false;
            return std::nullopt;
        }
        return s;
    };
    if (auto url = required("redis")) {
        auto a = cluster::parse_redis_address(*url);
        if (!a) {
            r.error(path + ".redis", a.error().message + line_of(node["redis"]));
            ok = false;
        } else {
            c.redis = std::move(*a);
        }
    }
    if (auto name = required("node")) {
        if (!valid_node_name(*name)) {
            r.error(path + ".node",
                    fmt::format("\"{}\" is not a node name: 1-63 of a-z 0-9 - (not at either "
                                "end), unique per relay, e.g. relay-a{}",
                                core::log_text(*name, 64), line_of(node["node"])));
            ok = false;
        } else {
            c.node = *name;
        }
    }
    // HOST:PORT of `key` into host/port; `why` says what a good one is.
    auto address = [&](const char* key, const std::string& text, bool any_ok, std::string_view why,
                       std::string& host, std::uint16_t& port) {
        auto a = parse_cluster_address(text);
        if (!a || (!any_ok && (a->first == "0.0.0.0" || a->first == "::"))) {
            r.error(path + "." + key,
                    fmt::format("\"{}\" is not HOST:PORT {}{}", core::log_text(text, 80), why,
                                line_of(node[key])));
            ok = false;
            return;
        }
        host = a->first;
        port = a->second;
    };
    // 0.0.0.0 binds every address; then `advertise` names the one to announce.
    if (auto listen = required("internal_listen"))
        address("internal_listen", *listen, static_cast<bool>(node["advertise"]),
                "of this relay as the other relays reach it (a specific address, not 0.0.0.0, "
                "unless advertise names one; port 1-65535), e.g. 10.0.0.5:7443 or [fd00::5]:7443",
                c.internal_host, c.internal_port);
    if (node["advertise"]) {
        if (auto text = r.string(node["advertise"], path + ".advertise"))
            address("advertise", *text, false,
                    "the other relays can reach this one at (announced to them: a specific "
                    "address or name, never 0.0.0.0 or ::; port 1-65535), e.g. 10.0.0.5:7443 or "
                    "the pod's IP",
                    c.advertise_host, c.advertise_port);
        else
            ok = false;
    }
    if (auto file = required("secret_file")) c.secret_file = *file;
    if (ok) out = std::move(c);
}

std::vector<std::string> describe(const cluster_config& config) {
    return {
        fmt::format("cluster.redis: {}", cluster::describe(config.redis)),
        fmt::format("cluster.node: {}", config.node),
        fmt::format("cluster.internal_listen: {}",
                    cluster_host_port(config.internal_host, config.internal_port)),
        fmt::format("cluster.advertise: {}{}", config.internal_address(),
                    config.advertise_host.empty() ? " (internal_listen)" : ""),
        fmt::format("cluster.secret_file: {}", config.secret_file),
    };
}

}  // namespace tunnel::relay
