#include "relay/share_grant.hpp"

#include <array>
#include <cmath>

#include <fmt/format.h>
#include <openssl/rand.h>
#include <nlohmann/json.hpp>

#include "core/duration.hpp"
#include "core/log_text.hpp"
#include "core/utc_time.hpp"
#include "relay/public_route.hpp"

namespace tunnel::relay {

namespace {

using json = nlohmann::json;
using sys = std::chrono::system_clock;

constexpr std::size_t share_id_hex = 20;
constexpr std::size_t max_state_grants = 1'000'000;

core::error invalid(std::string message) {
    return core::error{core::errc::invalid_argument, std::move(message)};
}

// Unix seconds within [0, 7.2e9] (before the year 2200), or nullopt.
std::optional<long long> unix_seconds(const json& v) {
    if (!v.is_number()) return std::nullopt;
    const double d = v.get<double>();
    if (!std::isfinite(d) || d < 0 || d > 7.2e9 || d != std::floor(d)) return std::nullopt;
    return static_cast<long long>(d);
}

std::string shown(const json& v) {
    return core::log_text(v.is_string() ? v.get<std::string>() : v.dump(), 64);
}

}  // namespace

std::string_view to_string(share_role role) noexcept {
    return role == share_role::view ? "view" : "invoke";
}

core::result<share_role> parse_share_role(std::string_view text) {
    if (text == "invoke") return share_role::invoke;
    if (text == "view") return share_role::view;
    return tl::unexpected(invalid(
        fmt::format("role \"{}\" is not one of invoke (call the name) or view (read its stats)",
                    core::log_text(text, 32))));
}

std::string share_grantee::to_string() const {
    return fmt::format("{}:{}", type == kind::tenant ? "tenant" : "audience", id);
}

core::result<share_grantee> parse_share_grantee(std::string_view text) {
    share_grantee g;
    std::string_view rest;
    if (text.starts_with("tenant:")) {
        g.type = share_grantee::kind::tenant;
        rest = text.substr(7);
    } else if (text.starts_with("audience:")) {
        g.type = share_grantee::kind::audience;
        rest = text.substr(9);
    } else {
        return tl::unexpected(
            invalid(fmt::format("grantee \"{}\" must be tenant:<tenant> (another tenant, with its "
                                "own tunnel token) or audience:<name> (visitor tokens minted with "
                                "--audience NAME), e.g. tenant:bob",
                                core::log_text(text, 64))));
    }
    auto id = normalize_label(rest, g.type == share_grantee::kind::tenant ? "tenant" : "audience");
    if (!id) return tl::unexpected(invalid("grantee: " + id.error().message));
    g.id = std::move(*id);
    return g;
}

void read_share_config(core::yaml_reader& r, const YAML::Node& node, const std::string& path,
                       share_config& out) {
    if (!r.expect_map(node, path,
                      {"state_file", "max_per_tenant", "max_ttl", "use_audit_interval"}))
        return;
    if (node["state_file"])
        if (auto s = r.string(node["state_file"], path + ".state_file")) {
            if (s->empty())
                r.error(path + ".state_file",
                        "must be a file path, e.g. /var/lib/tunnel/shares.json (leave the key "
                        "out to keep grants in memory only)");
            else
                out.state_file = *s;
        }
    if (node["max_per_tenant"])
        if (auto v = r.integer(node["max_per_tenant"], path + ".max_per_tenant", 0, 100000))
            out.limits.max_per_tenant = static_cast<unsigned>(*v);
    if (node["max_ttl"]) {
        const std::string key = path + ".max_ttl";
        if (auto d = r.duration(node["max_ttl"], key)) {
            if (*d < std::chrono::minutes(1) || *d > std::chrono::hours(24 * 366))
                r.error(key, "must be from 1m to 8784h (366 days), e.g. 720h");
            else
                out.limits.max_ttl = std::chrono::duration_cast<std::chrono::seconds>(*d);
        }
    }
    if (node["use_audit_interval"]) {
        const std::string key = path + ".use_audit_interval";
        if (auto d = r.duration(node["use_audit_interval"], key)) {
            if (*d > std::chrono::hours(24))
                r.error(key, "must be from 0 (audit every use) to 24h, e.g. 60s");
            else
                out.use_audit_interval = *d;
        }
    }
}

core::result<share_request> parse_share_request(std::string_view body, const tenant_policy& owner,
                                                const share_limits& limits, sys::time_point now) {
    if (body.size() > limits.max_body_bytes)
        return tl::unexpected(
            invalid(fmt::format("the request body is {} bytes; a share request is at most {}",
                                body.size(), limits.max_body_bytes)));
    auto j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object())
        return tl::unexpected(
            invalid("the body must be a JSON object, e.g. {\"name\": \"llm\", \"to\": "
                    "\"tenant:bob\", \"role\": \"invoke\", \"expires_in\": \"24h\"}"));
    for (const auto& [key, value] : j.items())
        if (key != "name" && key != "to" && key != "role" && key != "expires_in" &&
            key != "expires_at")
            return tl::unexpected(invalid(fmt::format(
                "unknown key \"{}\"; a share request has name, to, role and expires_in (or "
                "expires_at)",
                core::log_text(key, 32))));
    for (const char* key : {"name", "to", "role"})
        if (!j.contains(key) || !j[key].is_string())
            return tl::unexpected(invalid(fmt::format(
                "\"{}\" is required and must be a string ({})", key,
                std::string_view(key) == "name" ? "the published name to share, e.g. \"llm\""
                : std::string_view(key) == "to" ? "\"tenant:<tenant>\" or \"audience:<name>\""
                                                : "\"invoke\" or \"view\"")));
    share_request r;
    auto name = normalize_label(j["name"].get<std::string>(), "name");
    if (!name) return tl::unexpected(invalid(name.error().message));
    if (!may_publish(owner, *name))
        return tl::unexpected(invalid(fmt::format(
            "tenant {} cannot share \"{}\": its token does not allow that name (allow: {}); a "
            "tenant shares only names its own token lets it publish",
            owner.tenant, *name, fmt::join(owner.allow, ","))));
    r.name = std::move(*name);
    auto grantee = parse_share_grantee(j["to"].get<std::string>());
    if (!grantee) return tl::unexpected(grantee.error());
    if (grantee->type == share_grantee::kind::tenant && grantee->id == owner.tenant)
        return tl::unexpected(
            invalid(fmt::format("tenant {} owns {} already; grant to another tenant or an audience",
                                owner.tenant, r.name)));
    r.grantee = std::move(*grantee);
    auto role = parse_share_role(j["role"].get<std::string>());
    if (!role) return tl::unexpected(role.error());
    r.role = *role;

    const bool has_in = j.contains("expires_in");
    const bool has_at = j.contains("expires_at");
    const auto max_ttl = core::format_duration(limits.max_ttl);
    if (has_in == has_at)
        return tl::unexpected(invalid(fmt::format(
            "give exactly one of \"expires_in\" (a duration, e.g. \"24h\") or \"expires_at\" "
            "(unix seconds); a grant always expires, at most {} from now",
            max_ttl)));
    std::chrono::milliseconds ttl{0};
    if (has_in) {
        if (!j["expires_in"].is_string())
            return tl::unexpected(invalid(
                "\"expires_in\" must be a duration string, e.g. \"30m\", \"24h\", \"168h\""));
        auto d = core::parse_duration(j["expires_in"].get<std::string>());
        if (!d) return tl::unexpected(invalid("expires_in: " + d.error().message));
        ttl = *d;
        r.expires_at = now + std::chrono::duration_cast<sys::duration>(ttl);
    } else {
        auto at = unix_seconds(j["expires_at"]);
        if (!at)
            return tl::unexpected(
                invalid(fmt::format("\"expires_at\" must be whole unix seconds, e.g. {}; got {}",
                                    core::unix_seconds(now) + 86400, shown(j["expires_at"]))));
        r.expires_at = core::from_unix_seconds(*at);
        ttl = std::chrono::duration_cast<std::chrono::milliseconds>(r.expires_at - now);
    }
    if (ttl < std::chrono::seconds(1))
        return tl::unexpected(
            invalid("the grant would expire at once; give an expiry in the "
                    "future, e.g. \"expires_in\": \"24h\""));
    if (ttl > limits.max_ttl)
        return tl::unexpected(invalid(fmt::format(
            "the expiry is {} from now; this relay allows at most {} (shares.max_ttl): share "
            "for less and grant again later",
            core::format_duration(std::chrono::duration_cast<std::chrono::seconds>(ttl)),
            max_ttl)));
    return r;
}

core::result<std::string> new_share_id() {
    std::array<unsigned char, share_id_hex / 2> bytes{};
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1)
        return core::fail(core::errc::resource_exhausted, "no random bytes for a share id");
    std::string id = "shr_";
    for (unsigned char b : bytes) id += fmt::format("{:02x}", b);
    return id;
}

bool valid_share_id(std::string_view id) noexcept {
    if (id.size() != 4 + share_id_hex || !id.starts_with("shr_")) return false;
    for (char c : id.substr(4))
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

json to_json(const share_grant& g) {
    return json{{"id", g.id},
                {"tenant", g.tenant},
                {"name", g.name},
                {"to", g.grantee.to_string()},
                {"role", to_string(g.role)},
                {"created_at", core::unix_seconds(g.created_at)},
                {"expires_at", core::unix_seconds(g.expires_at)},
                {"expires", core::utc_iso8601(g.expires_at)},
                {"created_by", g.created_by}};
}

core::result<share_grant> share_grant_from_json(const json& j) {
    if (!j.is_object()) return tl::unexpected(invalid("a share is not a JSON object"));
    auto str = [&](const char* key) -> const std::string* {
        auto it = j.find(key);
        return it != j.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
    };
    share_grant g;
    const std::string* id = str("id");
    if (!id || !valid_share_id(*id)) return tl::unexpected(invalid("a share has no valid \"id\""));
    g.id = *id;
    const std::string* tenant = str("tenant");
    const std::string* name = str("name");
    if (!tenant || !valid_label(*tenant) || !name || !valid_label(*name))
        return tl::unexpected(invalid(g.id + ": \"tenant\" and \"name\" must be labels"));
    g.tenant = *tenant;
    g.name = *name;
    const std::string* to = str("to");
    if (!to) return tl::unexpected(invalid(g.id + ": no \"to\""));
    auto grantee = parse_share_grantee(*to);
    if (!grantee) return tl::unexpected(invalid(g.id + ": " + grantee.error().message));
    g.grantee = std::move(*grantee);
    const std::string* role = str("role");
    if (!role) return tl::unexpected(invalid(g.id + ": no \"role\""));
    auto r = parse_share_role(*role);
    if (!r) return tl::unexpected(invalid(g.id + ": " + r.error().message));
    g.role = *r;
    auto created = j.contains("created_at") ? unix_seconds(j["created_at"]) : std::nullopt;
    auto expires = j.contains("expires_at") ? unix_seconds(j["expires_at"]) : std::nullopt;
    if (!created || !expires)
        return tl::unexpected(invalid(g.id + ": created_at and expires_at must be unix seconds"));
    g.created_at = core::from_unix_seconds(*created);
    g.expires_at = core::from_unix_seconds(*expires);
    if (const std::string* by = str("created_by")) g.created_by = core::log_text(*by, 80);
    return g;
}

std::string serialize_shares(const std::vector<share_grant>& grants) {
    json list = json::array();
    for (const auto& g : grants) list.push_back(to_json(g));
    return json{{"version", 1}, {"shares", std::move(list)}}.dump(1) + "\n";
}

core::result<std::vector<share_grant>> parse_shares_file(std::string_view text,
                                                         std::string_view source) {
    auto j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object() || j.value("version", 0) != 1 || !j.contains("shares") ||
        !j["shares"].is_array())
        return tl::unexpected(invalid(fmt::format(
            "{}: not a shares state file ({{\"version\": 1, \"shares\": [...]}}); move it away "
            "to start with no grants",
            source)));
    if (j["shares"].size() > max_state_grants)
        return tl::unexpected(invalid(fmt::format("{}: too many shares", source)));
    std::vector<share_grant> out;
    for (const auto& item : j["shares"]) {
        auto g = share_grant_from_json(item);
        if (!g) return tl::unexpected(invalid(fmt::format("{}: {}", source, g.error().message)));
        out.push_back(std::move(*g));
    }
    return out;
}

}  // namespace tunnel::relay
