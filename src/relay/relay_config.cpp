#include "relay/relay_config.hpp"

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "core/duration.hpp"
#include "core/yaml_config.hpp"
#include "relay/relay_profile.hpp"

namespace tunnel::relay {

namespace {

using core::errc;

bool valid_domain(std::string_view d) {
    if (d.empty() || d.size() > 253 || d.front() == '.' || d.back() == '.') return false;
    std::size_t label = 0;
    for (std::size_t i = 0; i < d.size(); ++i) {
        char c = d[i];
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

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

void read_address(core::yaml_reader& r, const YAML::Node& node, const std::string& path,
                  listen_address& out) {
    if (!node) return;
    auto s = r.string(node, path);
    if (!s) return;
    auto a = parse_listen_address(*s);
    if (!a)
        r.error(path, a.error().message);
    else
        out = *a;
}

void read_duration(core::yaml_reader& r, const YAML::Node& map, const std::string& section,
                   const char* key, std::chrono::milliseconds& out) {
    if (!map[key]) return;
    auto path = section + "." + key;
    if (auto d = r.duration(map[key], path)) {
        if (d->count() <= 0)
            r.error(path, "must be > 0");
        else
            out = *d;
    }
}

void read_number(core::yaml_reader& r, const YAML::Node& map, const std::string& section,
                 const char* key, double& out) {
    if (!map[key]) return;
    if (auto v = r.number(map[key], section + "." + key, 0, 1e6)) out = *v;
}

template <class Int>
void read_integer(core::yaml_reader& r, const YAML::Node& map, const std::string& section,
                  const char* key, long long min, long long max, Int& out) {
    if (!map[key]) return;
    if (auto v = r.integer(map[key], section + "." + key, min, max)) out = static_cast<Int>(*v);
}

void read_file_path(core::yaml_reader& r, const YAML::Node& map, const std::string& section,
                    const char* key, std::string& out) {
    if (!map[key]) return;
    auto path = section.empty() ? std::string(key) : section + "." + key;
    if (auto s = r.string(map[key], path)) {
        if (s->empty())
            r.error(path, "must not be empty");
        else
            out = *s;
    }
}

}  // namespace

// parse_relay_config over the built-in defaults (base null) or over a profile.
static core::result<relay_config> parse_relay_config_over(std::string_view yaml_text,
                                                          const std::string& source,
                                                          const relay_config* base);

unsigned resolve_workers(const relay_config& c) {
    if (c.workers) return std::min(c.workers, max_workers);
    cpu_set_t set;
    CPU_ZERO(&set);
    long n = 0;
    if (::sched_getaffinity(0, sizeof(set), &set) == 0) n = CPU_COUNT(&set);
    if (n <= 0) n = static_cast<long>(std::thread::hardware_concurrency());
    return static_cast<unsigned>(std::clamp<long>(n, 1, max_workers));
}

bool listen_address::is_loopback() const noexcept {
    if (host == "localhost" || host == "::1") return true;
    return host.rfind("127.", 0) == 0;
}

std::string listen_address::to_string() const {
    if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
    return fmt::format("{}:{}", host, port);
}

core::result<listen_address> parse_listen_address(std::string_view text) {
    auto bad = [&](std::string_view why) {
        return core::fail(
            errc::invalid_argument,
            fmt::format("address \"{}\": {}; write HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080",
                        text, why));
    };
    listen_address out;
    std::string_view port_text;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return bad("missing ']:PORT'");
        out.host = std::string(text.substr(1, close - 1));
        port_text = text.substr(close + 2);
        if (out.host.empty()) return bad("empty IPv6 address");
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string_view::npos) return bad("no port");
        out.host = std::string(text.substr(0, colon));
        if (out.host.find(':') != std::string::npos) return bad("put an IPv6 address in brackets");
        port_text = text.substr(colon + 1);
    }
    for (char c : out.host)
        if (std::isspace(static_cast<unsigned char>(c))) return bad("spaces in the host");
    unsigned port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
        port > 65535)
        return bad("the port must be a number from 0 to 65535");
    out.port = static_cast<std::uint16_t>(port);
    return out;
}

routing_mode routing_of(const relay_config& c) noexcept {
    if (c.routing) return *c.routing;
    return c.domain.empty() ? routing_mode::path : routing_mode::host;
}

std::vector<std::string> validate(const relay_config& c) {
    std::vector<std::string> problems;
    if (!c.tls && !c.allow_plaintext && !c.listen.is_loopback())
        problems.push_back(
            fmt::format("listen: plain HTTP on {} is not loopback; configure tls (cert_file, "
                        "key_file) or set allow_plaintext: true",
                        c.listen.host.empty() ? "all interfaces" : c.listen.host));
    if (c.tls && (c.tls->cert_file.empty() || c.tls->key_file.empty()))
        problems.push_back("tls: both cert_file and key_file are required");
    if (c.listen.port != 0 && c.listen.port == c.admin_listen.port &&
        (c.listen.host == c.admin_listen.host || c.listen.host.empty() ||
         c.listen.host == "0.0.0.0" || c.admin_listen.host.empty() ||
         c.admin_listen.host == "0.0.0.0"))
        problems.push_back(
            fmt::format("admin_listen: port {} is also the public listen port; use another",
                        c.admin_listen.port));
    if (!c.admin_listen.is_loopback() && c.admin.token_file.empty())
        problems.push_back(fmt::format(
            "admin.token_file: required because admin_listen {} is not loopback: anyone who "
            "reaches it could read tenants, peers and metrics; set admin.token_file (e.g. "
            "`openssl rand -hex 32 > admin.token`) or bind admin_listen to 127.0.0.1",
            c.admin_listen.to_string()));
    for (const auto& h : c.admin.allowed_hosts)
        if (!valid_domain(h))
            problems.push_back(fmt::format(
                "admin.allowed_hosts: \"{}\" is not a DNS name such as relay-admin.internal (IP "
                "addresses and localhost are always answered)",
                h));
    if (c.audit_log.empty() && (!c.audit.hmac_key_file.empty() || c.audit.max_bytes > 0))
        problems.push_back("audit: hmac_key_file and max_bytes need audit_log: PATH");
    if (!c.domain.empty() && !valid_domain(c.domain))
        problems.push_back(
            fmt::format("domain: \"{}\" is not a DNS name such as relay.example.com", c.domain));
    if (c.routing && routes_by_host(*c.routing) && c.domain.empty())
        problems.push_back(fmt::format(
            "routing: {} needs domain (host routing serves <name>--<tenant>.<domain>); set domain "
            "or routing: path",
            to_string(*c.routing)));
    const int sources =
        !c.jwt.secret_file.empty() + !c.jwt.public_key_file.empty() + !c.jwt.jwks_file.empty();
    if (sources != 1)
        problems.push_back(fmt::format(
            "jwt: set exactly one of secret_file, public_key_file, jwks_file ({} set)", sources));
    if (!c.jwt.secret_file.empty() && c.jwt.algorithm != jwt_algorithm::hs256)
        problems.push_back(fmt::format(
            "jwt.algorithm: {} needs public_key_file or jwks_file; secret_file is for HS256",
            to_string(c.jwt.algorithm)));
    if ((!c.jwt.public_key_file.empty() || !c.jwt.jwks_file.empty()) &&
        c.jwt.algorithm == jwt_algorithm::hs256)
        problems.push_back(
            "jwt.algorithm: public keys verify RS256 or ES256 tokens; set algorithm: RS256 or "
            "ES256");
    if (c.limits.tenant_burst < 1) problems.push_back("limits.tenant_burst: must be >= 1");
    if (c.limits.route_burst < 1) problems.push_back("limits.route_burst: must be >= 1");
    if (c.limits.max_connections != 0 && c.limits.max_unauthenticated > c.limits.max_connections)
        problems.push_back(
            fmt::format("limits.max_unauthenticated: {} is more than limits.max_connections ({})",
                        c.limits.max_unauthenticated, c.limits.max_connections));
    if (c.limits.max_tunnel_buffer_bytes < c.limits.max_channel_buffer_bytes)
        problems.push_back(fmt::format(
            "limits.max_tunnel_buffer_bytes: {} is less than limits.max_channel_buffer_bytes ({})",
            c.limits.max_tunnel_buffer_bytes, c.limits.max_channel_buffer_bytes));
    if (c.liveness.ping_timeout.count() <= 0 || c.liveness.ping_interval.count() <= 0)
        problems.push_back("liveness: ping_interval and ping_timeout must be > 0");
    return problems;
}

core::result<relay_config> parse_relay_config(std::string_view yaml_text,
                                              const std::string& source) {
    return parse_relay_config_over(yaml_text, source, nullptr);
}

core::result<relay_config> parse_relay_config(std::string_view yaml_text, const std::string& source,
                                              const relay_config& base) {
    return parse_relay_config_over(yaml_text, source, &base);
}

core::result<relay_config> parse_relay_config_over(std::string_view yaml_text,
                                                   const std::string& source,
                                                   const relay_config* base) {
    core::yaml_reader r(source);
    relay_config c = base ? *base : relay_config{};
    auto doc = r.parse(yaml_text);
    if (base && r.ok() && (!doc || doc.IsNull())) {
        if (auto problems = validate(c); !problems.empty()) {
            for (const auto& p : problems) {
                auto colon = p.find(": ");
                r.error(p.substr(0, colon), p.substr(colon + 2));
            }
            return tl::unexpected(r.failure());
        }
        return c;
    }
    if (!doc || doc.IsNull()) {
        if (r.ok())
            r.error("(document)",
                    "is empty; the relay needs at least listen, host_key_file and jwt");
        return tl::unexpected(r.failure());
    }
    // Packed: one key a line would make every merge a conflict.
    // clang-format off
    if (!r.expect_map(doc, "",
                      {"listen", "tls", "allow_plaintext", "admin_listen", "admin", "domain",
                       "routing", "host_key_file", "audit_log", "audit", "jwt", "limits", "breaker",
                       "liveness", "shutdown", "visitors", "agent_forwarding", "workers",
                       "leases", "queue", "usage", "tracing", "shares", "tcp", "cluster",
                       "revocation"}))
        // clang-format on
        return tl::unexpected(r.failure());

    read_address(r, doc["listen"], "listen", c.listen);
    read_address(r, doc["admin_listen"], "admin_listen", c.admin_listen);
    if (auto w = doc["workers"]) {
        const std::string given = w.IsScalar() ? w.Scalar() : std::string("(not a number)");
        long long n = 0;
        const bool automatic = given == "auto";
        bool number = w.IsScalar() && !given.empty() &&
                      given.find_first_not_of("0123456789") == std::string::npos &&
                      given.size() <= 4;
        if (number) n = std::stoll(given);
        if (automatic)
            c.workers = 0;
        else if (!number || n < 1 || n > static_cast<long long>(max_workers))
            r.error("workers",
                    fmt::format("must be a whole number from 1 to {} or auto (got {:?}): the "
                                "number of worker threads; auto uses one per core",
                                max_workers, given.substr(0, 32)));
        else
            c.workers = static_cast<unsigned>(n);
    }
    if (auto tls = doc["tls"]; r.expect_map(tls, "tls", {"cert_file", "key_file"})) {
        tls_config t;
        read_file_path(r, tls, "tls", "cert_file", t.cert_file);
        read_file_path(r, tls, "tls", "key_file", t.key_file);
        if (!tls["cert_file"]) r.error("tls.cert_file", "is required when tls is set");
        if (!tls["key_file"]) r.error("tls.key_file", "is required when tls is set");
        c.tls = t;
    }
    if (doc["allow_plaintext"])
        if (auto b = r.boolean(doc["allow_plaintext"], "allow_plaintext")) c.allow_plaintext = *b;
    if (doc["domain"])
        if (auto d = r.string(doc["domain"], "domain")) c.domain = lower(*d);
    if (doc["routing"])
        if (auto m = r.string(doc["routing"], "routing")) {
            if (auto mode = parse_routing_mode(*m))
                c.routing = *mode;
            else
                r.error("routing", mode.error().message);
        }
    if (base && doc["tls"] && doc["tls"].IsNull()) c.tls.reset();  // `tls: ~`: off
    if (base && doc["audit_log"] && doc["audit_log"].IsNull()) {   // `audit_log: ~`: off
        c.audit_log.clear();
        c.audit = audit_config{};  // the base's rotation and key go with it
    }
    read_file_path(r, doc, "", "host_key_file", c.host_key_file);
    if (!doc["host_key_file"] && !base)
        r.error("host_key_file",
                "is required: the relay's persistent SSH host key (created if missing)");
    if (!(base && doc["audit_log"] && doc["audit_log"].IsNull()))
        read_file_path(r, doc, "", "audit_log", c.audit_log);
    if (auto a = doc["admin"]; r.expect_map(a, "admin", {"token_file", "allowed_hosts"})) {
        read_file_path(r, a, "admin", "token_file", c.admin.token_file);
        if (a["allowed_hosts"])
            if (auto hosts = r.string_list(a["allowed_hosts"], "admin.allowed_hosts"))
                for (const auto& h : *hosts) c.admin.allowed_hosts.push_back(lower(h));
    }
    if (auto a = doc["audit"]; r.expect_map(a, "audit", {"hmac_key_file", "max_bytes", "keep"})) {
        read_file_path(r, a, "audit", "hmac_key_file", c.audit.hmac_key_file);
        read_integer(r, a, "audit", "max_bytes", 4096, 1LL << 40, c.audit.max_bytes);
        read_integer(r, a, "audit", "keep", 1, 10000, c.audit.keep);
    }

    auto jwt = doc["jwt"];
    if (base && jwt && jwt.IsMap() &&
        (jwt["secret_file"] || jwt["public_key_file"] || jwt["jwks_file"])) {
        c.jwt.secret_file.clear();  // the document's key source replaces the base's
        c.jwt.public_key_file.clear();
        c.jwt.jwks_file.clear();
    }
    if (!jwt && !base)
        r.error("jwt",
                "is required: set secret_file (HS256), public_key_file or jwks_file (RS256/ES256)");
    if (r.expect_map(jwt, "jwt",
                     {"secret_file", "public_key_file", "jwks_file", "algorithm", "audience",
                      "issuer", "leeway"})) {
        read_file_path(r, jwt, "jwt", "secret_file", c.jwt.secret_file);
        read_file_path(r, jwt, "jwt", "public_key_file", c.jwt.public_key_file);
        read_file_path(r, jwt, "jwt", "jwks_file", c.jwt.jwks_file);
        if (jwt["algorithm"]) {
            if (auto s = r.string(jwt["algorithm"], "jwt.algorithm")) {
                if (auto a = parse_jwt_algorithm(*s))
                    c.jwt.algorithm = *a;
                else
                    r.error("jwt.algorithm", a.error().message);
            }
        } else if (!jwt["secret_file"] && (jwt["public_key_file"] || jwt["jwks_file"]) &&
                   !(base && c.jwt.algorithm != jwt_algorithm::hs256)) {
            r.error("jwt.algorithm",
                    "is required with public_key_file or jwks_file: RS256 or ES256");
        }
        if (jwt["audience"]) c.jwt.audience = r.string(jwt["audience"], "jwt.audience");
        if (jwt["issuer"]) c.jwt.issuer = r.string(jwt["issuer"], "jwt.issuer");
        if (jwt["leeway"])
            if (auto d = r.duration(jwt["leeway"], "jwt.leeway")) {
                if (*d > std::chrono::minutes(10))
                    r.error("jwt.leeway", "must be at most 10m");
                else
                    c.jwt.leeway = *d;
            }
    }

    if (auto l = doc["limits"]; r.expect_map(l, "limits",
                                             {"tenant_rps",
                                              "tenant_burst",
                                              "route_rps",
                                              "route_burst",
                                              "max_streams_per_tunnel",
                                              "max_header_bytes",
                                              "max_body_bytes",
                                              "header_read_timeout",
                                              "idle_timeout",
                                              "write_timeout",
                                              "min_body_rate",
                                              "min_body_rate_grace",
                                              "max_connections",
                                              "max_connections_per_ip",
                                              "max_unauthenticated",
                                              "attach_refusals_per_ip",
                                              "attach_refusal_window",
                                              "visitor_failures_per_ip",
                                              "visitor_failure_window",
                                              "max_password_checks",
                                              "max_tunnels_per_tenant",
                                              "max_names_per_tenant",
                                              "max_channel_buffer_bytes",
                                              "max_tunnel_buffer_bytes",
                                              "idle_channels_per_name",
                                              "idle_channel_timeout"})) {
        read_number(r, l, "limits", "tenant_rps", c.limits.tenant_rps);
        read_number(r, l, "limits", "tenant_burst", c.limits.tenant_burst);
        read_number(r, l, "limits", "route_rps", c.limits.route_rps);
        read_number(r, l, "limits", "route_burst", c.limits.route_burst);
        read_integer(r, l, "limits", "max_streams_per_tunnel", 1, 1000000,
                     c.limits.max_streams_per_tunnel);
        read_integer(r, l, "limits", "max_header_bytes", 1024, 1 << 20, c.limits.max_header_bytes);
        read_integer(r, l, "limits", "max_body_bytes", 0, 1LL << 40, c.limits.max_body_bytes);
        read_duration(r, l, "limits", "header_read_timeout", c.limits.header_read_timeout);
        read_duration(r, l, "limits", "idle_timeout", c.limits.idle_timeout);
        read_duration(r, l, "limits", "write_timeout", c.limits.write_timeout);
        if (l["min_body_rate"]) {  // 0 turns it off
            if (auto v = r.number(l["min_body_rate"], "limits.min_body_rate", -1, 1e9)) {
                if (*v < 0)
                    r.error("limits.min_body_rate", "must be >= 0 (0 turns the rate off)");
                else
                    c.limits.min_body_rate = *v;
            }
        }
        read_duration(r, l, "limits", "min_body_rate_grace", c.limits.min_body_rate_grace);
        read_integer(r, l, "limits", "max_connections", 0, 10000000, c.limits.max_connections);
        read_integer(r, l, "limits", "max_connections_per_ip", 1, 10000000,
                     c.limits.max_connections_per_ip);
        read_integer(r, l, "limits", "max_unauthenticated", 0, 10000000,
                     c.limits.max_unauthenticated);
        read_integer(r, l, "limits", "attach_refusals_per_ip", 1, 1000000,
                     c.limits.attach_refusals_per_ip);
        read_duration(r, l, "limits", "attach_refusal_window", c.limits.attach_refusal_window);
        read_integer(r, l, "limits", "visitor_failures_per_ip", 1, 1000000,
                     c.limits.visitor_failures_per_ip);
        read_duration(r, l, "limits", "visitor_failure_window", c.limits.visitor_failure_window);
        read_integer(r, l, "limits", "max_password_checks", 1, 100000,
                     c.limits.max_password_checks);
        read_integer(r, l, "limits", "max_tunnels_per_tenant", 1, 1000000,
                     c.limits.max_tunnels_per_tenant);
        read_integer(r, l, "limits", "max_names_per_tenant", 1, 1000000,
                     c.limits.max_names_per_tenant);
        // Below 3 MiB a client that respects the window could be taken for one
        // that does not: the relay holds up to 1 MiB per channel and libssh up to
        // ~1.9 MB more (its window is 1,280,000 bytes, re-opened at half).
        read_integer(r, l, "limits", "max_channel_buffer_bytes", 3 << 20, 1LL << 32,
                     c.limits.max_channel_buffer_bytes);
        read_integer(r, l, "limits", "max_tunnel_buffer_bytes", 3 << 20, 1LL << 40,
                     c.limits.max_tunnel_buffer_bytes);
        read_integer(r, l, "limits", "idle_channels_per_name", 0, 100000,
                     c.limits.idle_channels_per_name);
        read_duration(r, l, "limits", "idle_channel_timeout", c.limits.idle_channel_timeout);
    }
    if (auto b = doc["breaker"]; r.expect_map(b, "breaker", {"failures", "cooldown"})) {
        read_integer(r, b, "breaker", "failures", 0, 1000000, c.breaker.failures);
        read_duration(r, b, "breaker", "cooldown", c.breaker.cooldown);
    }
    if (auto lv = doc["liveness"];
        r.expect_map(lv, "liveness", {"ping_interval", "ping_timeout"})) {
        read_duration(r, lv, "liveness", "ping_interval", c.liveness.ping_interval);
        read_duration(r, lv, "liveness", "ping_timeout", c.liveness.ping_timeout);
    }
    if (auto s = doc["shutdown"]; r.expect_map(s, "shutdown", {"drain_timeout"}))
        read_duration(r, s, "shutdown", "drain_timeout", c.shutdown.drain_timeout);
    if (auto v = doc["visitors"]) read_visitor_config(r, v, "visitors", c.visitors);
    if (auto a = doc["agent_forwarding"])
        read_agent_forwarding_config(r, a, "agent_forwarding", c.agent_forwarding);
    if (auto l = doc["leases"]) read_lease_config(r, l, "leases", c.leases);
    if (auto q = doc["queue"]) read_queue_config(r, q, "queue", c.queue);
    if (auto u = doc["usage"])
        usage::read_usage_config(r, u, "usage", c.usage.emplace(),
                                 static_cast<bool>(doc["cluster"]) || c.cluster.has_value());
    if (auto t = doc["tracing"]) read_tracing_config(r, t, "tracing", c.tracing);
    if (auto s = doc["shares"]) read_share_config(r, s, "shares", c.shares);
    if (auto t = doc["tcp"]) read_tcp_config(r, t, "tcp", c.tcp);
    if (doc["cluster"]) read_cluster_config(r, doc["cluster"], "cluster", c.cluster);
    if (auto v = doc["revocation"]) read_revocation_config(r, v, "revocation", c.revocation);

    // Cross-field rules only once every field read cleanly: otherwise they repeat the same problem.
    if (r.ok())
        for (const auto& p : validate(c)) {
            auto colon = p.find(": ");
            r.error(p.substr(0, colon), p.substr(colon + 2));
        }
    if (!r.ok()) return tl::unexpected(r.failure());
    return c;
}

core::result<relay_config> load_relay_config(const std::string& path) {
    std::ifstream in(path);
    if (!in)
        return core::fail(
            errno == ENOENT ? errc::not_found : errc::permission_denied,
            fmt::format("{}: cannot read the relay config: {}", path, std::strerror(errno)));
    std::stringstream text;
    text << in.rdbuf();
    return parse_relay_config(text.str(), path);
}

void apply_dev_limits(relay_config& c) {
    c.limits.tenant_rps = 1000;
    c.limits.tenant_burst = 2000;
    c.limits.route_rps = 1000;
    c.limits.route_burst = 2000;
    c.limits.max_streams_per_tunnel = 256;
    // Tests and demos run every client from 127.0.0.1.
    c.limits.max_connections_per_ip = 4096;
    c.limits.attach_refusals_per_ip = 1000;
    c.limits.visitor_failures_per_ip = 1000;
}

core::result<relay_config> dev_config(std::string_view listen, std::string_view admin_listen,
                                      const std::string& secret_file) {
    relay_config c;
    auto l = parse_listen_address(listen);
    if (!l) return core::fail(errc::invalid_argument, "--listen: " + l.error().message);
    auto a = parse_listen_address(admin_listen);
    if (!a) return core::fail(errc::invalid_argument, "--admin-listen: " + a.error().message);
    if (!l->is_loopback())
        return core::fail(
            errc::invalid_argument,
            fmt::format(
                "--listen {}: dev mode serves plain HTTP and only on loopback; use 127.0.0.1:PORT "
                "or write a config file with tls",
                listen));
    if (!a->is_loopback())
        return core::fail(
            errc::invalid_argument,
            fmt::format("--admin-listen {}: dev mode binds the admin listener to loopback only",
                        admin_listen));
    if (secret_file.empty())
        return core::fail(errc::invalid_argument, "--jwt-secret-file is required in dev mode");
    c.listen = *l;
    c.admin_listen = *a;
    c.jwt.secret_file = secret_file;
    c.jwt.algorithm = jwt_algorithm::hs256;
    apply_dev_limits(c);
    if (auto problems = validate(c); !problems.empty())
        return core::fail(errc::invalid_argument, fmt::format("{}", fmt::join(problems, "\n")));
    return c;
}

verifier_options verifier_options_for(const relay_config& c) {
    verifier_options o;
    using source = verifier_options::key_source;
    if (!c.jwt.secret_file.empty()) {
        o.source = source::secret_file;
        o.path = c.jwt.secret_file;
    } else if (!c.jwt.public_key_file.empty()) {
        o.source = source::public_key_file;
        o.path = c.jwt.public_key_file;
    } else {
        o.source = source::jwks_file;
        o.path = c.jwt.jwks_file;
    }
    o.algorithm = c.jwt.algorithm;
    o.rules.audience = c.jwt.audience;
    o.rules.issuer = c.jwt.issuer;
    o.rules.leeway = std::chrono::duration_cast<std::chrono::seconds>(c.jwt.leeway);
    o.rules.default_max_streams = c.limits.max_streams_per_tunnel;
    o.rules.default_rps = c.limits.tenant_rps;
    o.rules.max_tunnels = c.limits.max_tunnels_per_tenant;
    o.rules.max_names = c.limits.max_names_per_tenant;
    return o;
}

}  // namespace tunnel::relay
