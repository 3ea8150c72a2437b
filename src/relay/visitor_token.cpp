#include "relay/visitor_token.hpp"

#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/glob.hpp"
#include "relay/public_route.hpp"

namespace tunnel::relay {

namespace {

using json = nlohmann::json;

constexpr std::size_t max_visitor_claims_bytes = 8192;
constexpr std::size_t max_services = 64;
constexpr std::size_t max_audiences = 8;

token_error visitor_refusal(token_errc code, std::string message) {
    return token_error{code, std::move(message), {}};
}

// A NumericDate within ±1e12 s, so differences with now fit a long long
// (token_verifier.cpp: the same rule).
std::optional<double> numeric_date(const json& v) {
    if (!v.is_number()) return std::nullopt;
    const double d = v.get<double>();
    if (!std::isfinite(d) || d < -1e12 || d > 1e12) return std::nullopt;
    return d;
}

bool printable(std::string_view s) {
    for (char c : s)
        if (c < 0x21 || c > 0x7e) return false;
    return true;
}

}  // namespace

bool grants(const visitor_grant& grant, std::string_view tenant, std::string_view name) noexcept {
    if (grant.tenant != tenant || !valid_label(name)) return false;
    for (const auto& glob : grant.services)
        if (core::glob_match(glob, name, true)) return true;
    return false;
}

token_result<visitor_grant> map_visitor_claims(std::string_view claims_json,
                                               std::chrono::seconds leeway,
                                               std::chrono::system_clock::time_point now) {
    auto fail = [](token_errc code, std::string message) {
        return tl::unexpected(visitor_refusal(code, std::move(message)));
    };
    if (claims_json.size() > max_visitor_claims_bytes)
        return fail(token_errc::malformed, "visitor token claims are too large");
    auto claims = json::parse(claims_json, nullptr, false);
    if (claims.is_discarded() || !claims.is_object())
        return fail(token_errc::malformed, "visitor token claims are not a JSON object");

    // Type first: a tunnel token presented by a visitor is refused as such.
    auto typ = claims.find("typ");
    if (typ == claims.end() || *typ != visitor_token_type)
        return fail(token_errc::wrong_type,
                    "this is not a visitor token; ask the relay's operator for one (tunnel "
                    "token --visitor)");
    auto aud = claims.find("aud");
    std::vector<std::string> audiences;
    bool ours = aud != claims.end() && *aud == visitor_token_type;
    if (aud != claims.end() && aud->is_array() && !aud->empty() && aud->size() <= max_audiences) {
        for (const auto& a : *aud) {
            if (!a.is_string()) {
                ours = false;
                break;
            }
            const auto& text = a.get_ref<const std::string&>();
            if (text == visitor_token_type) {
                ours = true;
            } else if (valid_label(text)) {
                audiences.push_back(text);
            } else {
                return fail(token_errc::wrong_audience,
                            "a visitor token's extra audiences must be names (a-z, 0-9, '-')");
            }
        }
    }
    if (!ours)
        return fail(token_errc::wrong_audience, "a visitor token's audience must be \"" +
                                                    std::string(visitor_token_type) +
                                                    "\" (or a list holding it)");

    const double now_s = std::chrono::duration<double>(now.time_since_epoch()).count();
    const auto skew = static_cast<double>(leeway.count());
    auto exp_it = claims.find("exp");
    if (exp_it == claims.end())
        return fail(token_errc::missing_claim, "visitor token has no \"exp\" claim");
    auto exp = numeric_date(*exp_it);
    if (!exp || *exp < 0 || *exp > 7.2e9)
        return fail(token_errc::invalid_claim,
                    "\"exp\" must be a NumericDate (seconds since 1970) before the year 2200");
    if (now_s >= *exp + skew)
        return fail(token_errc::expired,
                    fmt::format("the visitor token expired {} s ago; ask for a new one",
                                static_cast<long long>(now_s - *exp)));
    for (const char* claim : {"nbf", "iat"}) {
        auto it = claims.find(claim);
        if (it == claims.end()) continue;
        auto v = numeric_date(*it);
        if (!v)
            return fail(token_errc::invalid_claim,
                        fmt::format("\"{}\" must be a NumericDate", claim));
        if (now_s + skew < *v)
            return fail(token_errc::not_yet_valid,
                        fmt::format("the visitor token is not valid yet ({} is {} s ahead); check "
                                    "the clocks of the minter and the relay",
                                    claim, static_cast<long long>(*v - now_s)));
    }

    visitor_grant grant;
    grant.audiences = std::move(audiences);
    grant.expires = std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::duration<double>(*exp)));
    auto sub = claims.find("sub");
    if (sub == claims.end())
        return fail(token_errc::missing_claim, "visitor token has no \"sub\" claim (the tenant)");
    if (!sub->is_string() || !valid_label(sub->get_ref<const std::string&>()))
        return fail(token_errc::invalid_claim, "\"sub\" (the tenant) must be a tenant name");
    grant.tenant = sub->get<std::string>();

    auto svc = claims.find("svc");
    if (svc == claims.end())
        return fail(token_errc::missing_claim,
                    "visitor token has no \"svc\" claim (the services it may call)");
    if (!svc->is_array() || svc->empty() || svc->size() > max_services)
        return fail(
            token_errc::invalid_claim,
            fmt::format("\"svc\" must be a list of 1 to {} service-name globs", max_services));
    for (const auto& g : *svc) {
        if (!g.is_string() || !valid_name_glob(g.get_ref<const std::string&>()))
            return fail(token_errc::invalid_claim,
                        "\"svc\" entries must be name globs (a-z, 0-9, '-', '*', '?')");
        grant.services.push_back(g.get<std::string>());
    }
    if (auto jti = claims.find("jti"); jti != claims.end()) {
        if (!jti->is_string() || jti->get_ref<const std::string&>().size() > 64 ||
            !printable(jti->get_ref<const std::string&>()))
            return fail(token_errc::invalid_claim,
                        "\"jti\" must be a string of at most 64 printable characters");
        grant.id = jti->get<std::string>();
    }
    return grant;
}

verifier_options visitor_verifier_options(std::string secret_file, std::chrono::seconds leeway) {
    verifier_options o;
    o.source = verifier_options::key_source::secret_file;
    o.path = std::move(secret_file);
    o.algorithm = jwt_algorithm::hs256;
    o.rules.leeway = leeway;
    return o;
}

token_result<visitor_grant> verify_visitor_token(const token_verifier& verifier,
                                                 std::string_view token,
                                                 std::chrono::system_clock::time_point now) {
    auto claims = verifier.verified_claims(token);
    if (!claims) return tl::unexpected(claims.error());
    return map_visitor_claims(*claims, verifier.options().rules.leeway, now);
}

}  // namespace tunnel::relay
