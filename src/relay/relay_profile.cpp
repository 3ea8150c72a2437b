#include "relay/relay_profile.hpp"

#include <optional>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

namespace tunnel::relay {

namespace {

using core::errc;

// Merges `from` into `into`: maps key by key, anything else replaces.
void merge(YAML::Node into, const YAML::Node& from) {
    for (const auto& kv : from) {
        const auto key = kv.first.as<std::string>();
        YAML::Node target = into[key];
        if (kv.second.IsMap() && target.IsMap())
            merge(target, kv.second);
        else
            into[key] = YAML::Clone(kv.second);
    }
}

bool valid_key(std::string_view k) {
    if (k.empty() || k.size() > 64) return false;
    for (char c : k)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    return true;
}

}  // namespace

core::result<relay_profile> parse_relay_profile(std::string_view name) {
    if (name == "dev") return relay_profile::dev;
    if (name == "prod") return relay_profile::prod;
    return core::fail(errc::invalid_argument,
                      fmt::format("--profile {:?}: unknown profile; use dev (loopback, plain "
                                  "HTTP) or prod (TLS, audit log; see docs/relay.md \"Profiles\")",
                                  std::string(name.substr(0, 32))));
}

std::string_view to_string(relay_profile p) noexcept {
    return p == relay_profile::dev ? "dev" : "prod";
}

relay_config profile_config(relay_profile p) {
    relay_config c;
    if (p == relay_profile::dev) {
        // The same values as dev_config (`tunnel relay --dev`).
        c.listen = {"127.0.0.1", 8080};
        c.admin_listen = {"127.0.0.1", 9090};
        c.jwt.algorithm = jwt_algorithm::hs256;
        apply_dev_limits(c);
        return c;
    }
    c.listen = {"0.0.0.0", 8443};
    c.tls = tls_config{"/etc/tunnel/tls/relay.crt", "/etc/tunnel/tls/relay.key"};
    c.admin_listen = {"127.0.0.1", 9090};
    c.host_key_file = "/var/lib/tunnel/relay_host_ed25519";
    c.audit_log = "/var/log/tunnel/audit.jsonl";
    c.audit.max_bytes = std::uint64_t{100} << 20;
    c.audit.keep = 10;
    c.jwt.secret_file = "/etc/tunnel/jwt.secret";
    c.jwt.algorithm = jwt_algorithm::hs256;
    return c;
}

core::result<std::string> apply_sets(std::string_view yaml_text,
                                     const std::vector<std::string>& sets) {
    if (sets.empty()) return std::string(yaml_text);
    YAML::Node doc;
    try {
        doc = YAML::Load(std::string(yaml_text));
    } catch (const YAML::Exception&) {
        return std::string(yaml_text);  // the config parser reports the syntax error with its line
    }
    if (!doc || doc.IsNull()) doc = YAML::Node(YAML::NodeType::Map);
    if (!doc.IsMap()) return std::string(yaml_text);
    for (const auto& set : sets) {
        const auto eq = set.find('=');
        const std::string shown = set.substr(0, 80);
        if (eq == std::string::npos || eq == 0)
            return core::fail(errc::invalid_argument,
                              fmt::format("--set {:?}: write KEY=VALUE with a dotted key, e.g. "
                                          "--set limits.tenant_rps=200",
                                          shown));
        std::vector<std::string> path;
        std::string_view key(set.data(), eq);
        while (true) {
            const auto dot = key.find('.');
            const auto part = key.substr(0, dot);
            if (!valid_key(part))
                return core::fail(
                    errc::invalid_argument,
                    fmt::format("--set {:?}: {:?} is not a config key (lower case, digits and _; "
                                "see docs/relay.md \"Configuration\")",
                                shown, std::string(part.substr(0, 64))));
            path.emplace_back(part);
            if (dot == std::string_view::npos) break;
            key.remove_prefix(dot + 1);
        }
        YAML::Node value;
        try {
            value = YAML::Load(set.substr(eq + 1));
        } catch (const YAML::Exception& e) {
            return core::fail(errc::invalid_argument,
                              fmt::format("--set {:?}: the value is not YAML: {}", shown, e.msg));
        }
        YAML::Node patch = value;
        for (auto it = path.rbegin(); it != path.rend(); ++it) {
            YAML::Node level(YAML::NodeType::Map);
            level[*it] = patch;
            patch = level;
        }
        merge(doc, patch);
    }
    YAML::Emitter out;
    out << doc;
    return std::string(out.c_str());
}

core::result<relay_config> profile_relay_config(relay_profile p, std::string_view config_text,
                                                const std::string& source,
                                                const std::vector<std::string>& sets,
                                                const relay_flag_overrides& flags) {
    std::optional<listen_address> listen;
    std::optional<listen_address> admin_listen;
    if (!flags.listen.empty()) {
        auto l = parse_listen_address(flags.listen);
        if (!l) return core::fail(errc::invalid_argument, "--listen: " + l.error().message);
        listen = *l;
    }
    if (!flags.admin_listen.empty()) {
        auto a = parse_listen_address(flags.admin_listen);
        if (!a) return core::fail(errc::invalid_argument, "--admin-listen: " + a.error().message);
        admin_listen = *a;
    }
    // The flags win over the profile and the file: applied to both.
    auto apply_flags = [&](relay_config& c) {
        if (listen) c.listen = *listen;
        if (admin_listen) c.admin_listen = *admin_listen;
        if (!flags.jwt_secret_file.empty()) {
            c.jwt.secret_file = flags.jwt_secret_file;
            c.jwt.public_key_file.clear();
            c.jwt.jwks_file.clear();
            c.jwt.algorithm = jwt_algorithm::hs256;
        }
    };
    relay_config base = profile_config(p);
    apply_flags(base);
    auto text = apply_sets(config_text, sets);
    if (!text) return tl::unexpected(text.error());
    const std::string named = sets.empty() ? source : source + " with --set";
    auto c = parse_relay_config(*text, named, base);
    if (!c) return c;
    apply_flags(*c);
    if (auto problems = validate(*c); !problems.empty())
        return core::fail(errc::invalid_argument,
                          fmt::format("{}: {}", named, fmt::join(problems, "\n" + named + ": ")));
    return c;
}

}  // namespace tunnel::relay
