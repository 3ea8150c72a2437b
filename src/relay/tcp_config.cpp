#include "relay/tcp_config.hpp"

#include <charconv>

#include <fmt/format.h>

#include "core/asio.hpp"
#include "core/duration.hpp"
#include "core/log_text.hpp"

namespace tunnel::relay {

namespace {

// A DNS name of lower-case labels (a-z, 0-9, '-'), at least two of them.
bool valid_sni_domain(std::string_view d) {
    if (d.empty() || d.size() > 200 || d.front() == '.' || d.back() == '.' ||
        d.find('.') == std::string_view::npos)
        return false;
    std::size_t label = 0;
    for (std::size_t i = 0; i < d.size(); ++i) {
        const char c = d[i];
        if (c == '.') {
            if (label == 0 || d[i - 1] == '-') return false;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
        if (c == '-' && label == 0) return false;
        if (++label > 63) return false;
    }
    return d.back() != '-';
}

std::optional<unsigned> parse_port(std::string_view s) {
    unsigned v = 0;
    if (s.empty() || s.size() > 5) return std::nullopt;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    return v;
}

void read_ports(core::yaml_reader& r, const YAML::Node& node, const std::string& key,
                tcp_config& out) {
    // A YAML integer (one port) reads as a scalar too.
    auto s = r.string(node, key);
    if (!s) return;
    const std::string_view text = *s;
    const auto dash = text.find('-');
    auto first = parse_port(text.substr(0, dash));
    auto last = dash == std::string_view::npos ? first : parse_port(text.substr(dash + 1));
    const auto shown = core::log_text(*s, 32);
    if (!first || !last) {
        r.error(key, fmt::format("\"{}\" is not a port range: write FIRST-LAST, e.g. 20000-20099, "
                                 "or one port",
                                 shown));
        return;
    }
    if (*first < 1024 || *last > 65535 || *first > *last) {
        r.error(key, fmt::format("\"{}\": the range must lie within 1024-65535 and start at or "
                                 "below its end, e.g. 20000-20099",
                                 shown));
        return;
    }
    if (*last - *first + 1 > max_tcp_ports) {
        r.error(key, fmt::format("\"{}\" has {} ports; at most {} (each assigned port is a "
                                 "listening socket)",
                                 shown, *last - *first + 1, max_tcp_ports));
        return;
    }
    out.first_port = static_cast<std::uint16_t>(*first);
    out.last_port = static_cast<std::uint16_t>(*last);
}

}  // namespace

void read_tcp_config(core::yaml_reader& r, const YAML::Node& node, const std::string& path,
                     tcp_config& out) {
    if (!r.expect_map(
            node, path,
            {"ports", "bind", "sni_domain", "client_hello_timeout", "max_connections_per_tenant"}))
        return;
    out.enabled = true;
    if (node["ports"]) read_ports(r, node["ports"], path + ".ports", out);
    if (node["bind"]) {
        const std::string key = path + ".bind";
        if (auto s = r.string(node["bind"], key)) {
            boost::system::error_code ec;
            (void)asio::ip::make_address(*s, ec);
            if (ec)
                r.error(key, fmt::format("\"{}\" is not an IP address: write e.g. 0.0.0.0, "
                                         "127.0.0.1 or ::",
                                         core::log_text(*s, 64)));
            else
                out.bind = *s;
        }
    }
    if (node["sni_domain"]) {
        const std::string key = path + ".sni_domain";
        if (auto s = r.string(node["sni_domain"], key)) {
            if (!valid_sni_domain(*s))
                r.error(key, fmt::format("\"{}\" is not a lower-case DNS name with at least two "
                                         "labels, e.g. tcp.example.com (names are "
                                         "<name>--<tenant>.<sni_domain>)",
                                         core::log_text(*s, 64)));
            else
                out.sni_domain = *s;
        }
    }
    if (node["client_hello_timeout"]) {
        const std::string key = path + ".client_hello_timeout";
        if (auto d = r.duration(node["client_hello_timeout"], key)) {
            if (d->count() <= 0 || *d > std::chrono::minutes(1))
                r.error(key, "must be more than 0 and at most 1m, e.g. 5s");
            else
                out.client_hello_timeout = *d;
        }
    }
    if (node["max_connections_per_tenant"])
        if (auto v = r.integer(node["max_connections_per_tenant"],
                               path + ".max_connections_per_tenant", 1, 1000000))
            out.max_connections_per_tenant = static_cast<unsigned>(*v);
    if (r.ok() && !out.ports_enabled())
        r.error(path + ".ports",
                "is required: every raw TCP name gets a port from it (e.g. 20000-20099), "
                "sni_domain only adds TLS routing by name on the public port (bind the ports to "
                "127.0.0.1 to offer SNI routing alone)");
}

std::vector<std::string> describe(const tcp_config& tcp) {
    std::vector<std::string> out;
    if (!tcp.enabled) {
        out.emplace_back("tcp: (off)");
        return out;
    }
    out.push_back(tcp.ports_enabled()
                      ? fmt::format("tcp.ports: {}-{}", tcp.first_port, tcp.last_port)
                      : std::string("tcp.ports: (none)"));
    out.push_back(fmt::format("tcp.bind: {}", tcp.bind.empty() ? "(listen's host)" : tcp.bind));
    out.push_back(fmt::format("tcp.sni_domain: {}",
                              tcp.sni_domain.empty() ? "(none: no SNI routing)" : tcp.sni_domain));
    out.push_back(fmt::format("tcp.client_hello_timeout: {}",
                              core::format_duration(tcp.client_hello_timeout)));
    out.push_back(
        fmt::format("tcp.max_connections_per_tenant: {}", tcp.max_connections_per_tenant));
    return out;
}

}  // namespace tunnel::relay
