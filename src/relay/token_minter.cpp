#include "relay/token_minter.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <memory>

#include <fmt/format.h>
#include <jwt.h>
#include <openssl/rand.h>
#include <nlohmann/json.hpp>

#include "core/duration.hpp"
#include "core/encoding.hpp"
#include "core/utc_time.hpp"
#include "relay/jwt_handle.hpp"
#include "relay/public_route.hpp"
#include "relay/token_verifier.hpp"
#include "relay/visitor_token.hpp"

namespace tunnel::relay {

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

}  // namespace

std::vector<std::string> split_allow_list(std::string_view list) {
    std::vector<std::string> out;
    while (!list.empty()) {
        auto comma = list.find(',');
        auto item = list.substr(0, comma);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
        if (!item.empty()) out.emplace_back(item);
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    return out;
}

namespace {

// Tenant, globs ("--allow"), ttl and secret file, checked alike for both kinds of token.
struct common_fields {
    std::string tenant;
    std::vector<std::string> globs;
    long long ttl_s = 0;
    std::string secret;
};

common_fields check_common(const std::string& tenant_in, const std::vector<std::string>& allow,
                           std::chrono::milliseconds ttl, const std::string& secret_file,
                           std::string_view allow_hint, std::vector<std::string>& problems,
                           std::vector<std::string>& warnings) {
    common_fields out;
    auto tenant = normalize_label(tenant_in, "--tenant");
    if (!tenant)
        problems.push_back(tenant.error().message);
    else
        out.tenant = *tenant;

    if (allow.empty()) problems.push_back(std::string(allow_hint));
    for (const auto& g : allow) {
        auto glob = lower(g);
        if (!valid_name_glob(glob))
            problems.push_back(fmt::format(
                "--allow \"{}\": a name glob is 1-63 characters of a-z, 0-9, '-', '*' and '?'", g));
        else
            out.globs.push_back(glob);
    }

    constexpr auto max_ttl = std::chrono::hours(24 * 366);
    if (ttl.count() <= 0)
        problems.push_back("--ttl: must be > 0, e.g. --ttl 1h");
    else if (ttl > max_ttl)
        problems.push_back(fmt::format("--ttl {}: must be at most {} (366 days)",
                                       core::format_duration(ttl), core::format_duration(max_ttl)));
    out.ttl_s = (ttl.count() + 999) / 1000;

    if (secret_file.empty()) {
        problems.push_back("--secret-file: required (the relay's jwt.secret_file)");
    } else if (auto s = read_secret_file(secret_file); !s) {
        problems.push_back("--secret-file: " + s.error().message);
    } else {
        out.secret = std::move(*s);
        struct stat st {};
        if (::stat(secret_file.c_str(), &st) == 0 && (st.st_mode & 077) != 0)
            warnings.push_back(
                fmt::format("secret file {} is readable by group or others (mode {:04o}); "
                            "run `chmod 600 {}`",
                            secret_file, st.st_mode & 07777, secret_file));
    }
    return out;
}

core::result<std::string> sign_hs256(const nlohmann::json& claims, const std::string& secret) {
    jwt_t* raw = nullptr;
    if (jwt_new(&raw) != 0)
        return core::fail(core::errc::resource_exhausted, "cannot create a JWT (out of memory)");
    jwt_handle jwt(raw);
    if (jwt_add_grants_json(jwt.get(), claims.dump().c_str()) != 0 ||
        jwt_set_alg(jwt.get(), JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(secret.data()),
                    static_cast<int>(secret.size())) != 0)
        return core::fail(core::errc::invalid_argument, "libjwt refused the claims or the secret");
    jwt_string token(jwt_encode_str(jwt.get()));
    if (!token)
        return core::fail(core::errc::resource_exhausted, "libjwt could not encode the token");
    return std::string(token.get());
}

}  // namespace

core::result<minted_token> mint_token(const mint_request& req,
                                      std::chrono::system_clock::time_point now) {
    std::vector<std::string> problems;
    minted_token out;
    auto common = check_common(
        req.tenant, req.allow, req.ttl, req.secret_file,
        "--allow: list the service names the tenant may publish, e.g. --allow 'llm,web-*'",
        problems, out.warnings);
    if (req.max_streams && *req.max_streams == 0) problems.push_back("--max-streams: must be >= 1");
    if (req.rps && (!std::isfinite(*req.rps) || *req.rps <= 0 || *req.rps > 1e6))
        problems.push_back("--rps: must be a number > 0 and <= 1000000");
    if (req.lease_grace &&
        (req.lease_grace->count() < 0 || *req.lease_grace > std::chrono::hours(24)))
        problems.push_back(
            "--lease-grace: must be from 0 (no lease) to 24h, e.g. 30s; it only shortens the "
            "relay's leases.grace");
    if (req.audience && req.audience->empty()) problems.push_back("--audience: must not be empty");
    if (req.audience && *req.audience == "tunnel-visitor")
        problems.push_back("--audience: \"tunnel-visitor\" is reserved for visitor tokens");
    if (req.issuer && req.issuer->empty()) problems.push_back("--issuer: must not be empty");
    std::vector<std::string> access;
    for (const auto& a : req.access) {
        auto modes = parse_access_modes(a, "--access");
        if (!modes) {
            problems.push_back(modes.error().message);
            continue;
        }
        for (auto m :
             {access_mode::public_, access_mode::token, access_mode::basic, access_mode::ip})
            if (modes->contains(m) &&
                std::find(access.begin(), access.end(), to_string(m)) == access.end())
                access.emplace_back(to_string(m));
    }
    if (!problems.empty())
        return core::fail(core::errc::invalid_argument,
                          fmt::format("{}", fmt::join(problems, "\n")));

    // A random jti: what `tunnel token --revoke` names.
    std::array<unsigned char, 12> id{};
    if (RAND_bytes(id.data(), static_cast<int>(id.size())) != 1)
        return core::fail(core::errc::resource_exhausted, "no random bytes for the token id");
    const auto iat = core::unix_seconds(now);
    nlohmann::json claims{{"sub", common.tenant},
                          {"allow", common.globs},
                          {"iat", iat},
                          {"exp", iat + common.ttl_s},
                          {"jti", core::base64url_encode(std::string_view(
                                      reinterpret_cast<const char*>(id.data()), id.size()))}};
    if (req.max_streams) claims["max_streams"] = *req.max_streams;
    if (req.rps) claims["rps"] = *req.rps;
    if (req.lease_grace)
        claims["lease_grace"] =
            std::chrono::duration_cast<std::chrono::seconds>(*req.lease_grace).count();
    if (req.audience) claims["aud"] = *req.audience;
    if (req.issuer) claims["iss"] = *req.issuer;
    if (!access.empty()) claims["access"] = access;
    auto token = sign_hs256(claims, common.secret);
    if (!token) return tl::unexpected(token.error());
    out.token = std::move(*token);
    out.tenant = common.tenant;
    out.id = claims["jti"].get<std::string>();
    out.expires = std::chrono::system_clock::time_point(std::chrono::seconds(iat + common.ttl_s));
    return out;
}

core::result<minted_token> mint_visitor_token(const visitor_mint_request& req,
                                              std::chrono::system_clock::time_point now) {
    std::vector<std::string> problems;
    minted_token out;
    auto common = check_common(req.tenant, req.allow, req.ttl, req.secret_file,
                               "--allow: list the services the visitor may call, e.g. --allow llm",
                               problems, out.warnings);
    nlohmann::json aud = visitor_token_type;
    if (!req.audiences.empty()) {
        aud = nlohmann::json::array({visitor_token_type});
        if (req.audiences.size() > 7)
            problems.push_back("--audience: at most 7 audiences on one visitor token");
        for (const auto& a : req.audiences) {
            if (!valid_label(a))
                problems.push_back(fmt::format(
                    "--audience: \"{}\" is not an audience name (a-z, 0-9, '-'), e.g. partners",
                    a));
            aud.push_back(a);
        }
    }
    if (!problems.empty())
        return core::fail(core::errc::invalid_argument,
                          fmt::format("{}", fmt::join(problems, "\n")));
    std::array<unsigned char, 12> id{};
    if (RAND_bytes(id.data(), static_cast<int>(id.size())) != 1)
        return core::fail(core::errc::resource_exhausted, "no random bytes for the token id");
    const auto iat = core::unix_seconds(now);
    nlohmann::json claims{{"typ", visitor_token_type},
                          {"aud", aud},
                          {"sub", common.tenant},
                          {"svc", common.globs},
                          {"iat", iat},
                          {"exp", iat + common.ttl_s},
                          {"jti", core::base64url_encode(std::string_view(
                                      reinterpret_cast<const char*>(id.data()), id.size()))}};
    auto token = sign_hs256(claims, common.secret);
    if (!token) return tl::unexpected(token.error());
    out.token = std::move(*token);
    out.tenant = common.tenant;
    out.id = claims["jti"].get<std::string>();
    out.expires = std::chrono::system_clock::time_point(std::chrono::seconds(iat + common.ttl_s));
    return out;
}

}  // namespace tunnel::relay
