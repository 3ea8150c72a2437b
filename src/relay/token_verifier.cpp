#include "relay/token_verifier.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include <fmt/format.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <nlohmann/json.hpp>

#include "core/encoding.hpp"
#include "core/glob.hpp"
#include "relay/jwt_handle.hpp"
#include "relay/jwt_keys.hpp"
#include "relay/public_route.hpp"

namespace tunnel::relay {

namespace {

using json = nlohmann::json;
using core::errc;

constexpr std::size_t max_token_bytes = 8192;
constexpr std::size_t max_claims_bytes = 8192;
constexpr std::size_t max_allow_entries = 256;

token_error refuse(token_errc code, std::string message) {
    return token_error{code, std::move(message), {}};
}

// A claim value quoted for a message: short, printable.
std::string shown(std::string_view v) {
    std::string out;
    for (char c : v.substr(0, 64)) out += (c >= 0x20 && c < 0x7f && c != '"') ? c : '?';
    if (v.size() > 64) out += "...";
    return out;
}

jwt_alg_t to_libjwt(jwt_algorithm a) noexcept {
    switch (a) {
        case jwt_algorithm::hs256:
            return JWT_ALG_HS256;
        case jwt_algorithm::rs256:
            return JWT_ALG_RS256;
        case jwt_algorithm::es256:
            return JWT_ALG_ES256;
    }
    return JWT_ALG_INVAL;
}

core::result<std::string> read_file(const std::string& path, std::string_view what) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return core::fail(errno == ENOENT ? errc::not_found : errc::permission_denied,
                          fmt::format("{} {}: cannot read: {}", what, path, std::strerror(errno)));
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// A NumericDate: a finite number of seconds within ±1e12 (31,000 years), so
// that differences with now fit the long long the messages print (a claim of
// 1.8e40 once reached that cast: UB, found by jwt_claims_fuzz).
std::optional<double> numeric(const json& v) {
    if (!v.is_number()) return std::nullopt;
    double d = v.get<double>();
    if (!std::isfinite(d) || d < -1e12 || d > 1e12) return std::nullopt;
    return d;
}

}  // namespace

std::string_view to_string(jwt_algorithm alg) noexcept {
    switch (alg) {
        case jwt_algorithm::hs256:
            return "HS256";
        case jwt_algorithm::rs256:
            return "RS256";
        case jwt_algorithm::es256:
            return "ES256";
    }
    return "?";
}

core::result<jwt_algorithm> parse_jwt_algorithm(std::string_view text) {
    std::string up(text);
    for (auto& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (up == "HS256") return jwt_algorithm::hs256;
    if (up == "RS256") return jwt_algorithm::rs256;
    if (up == "ES256") return jwt_algorithm::es256;
    return core::fail(
        errc::invalid_argument,
        fmt::format("unsupported JWT algorithm \"{}\"; use HS256, RS256 or ES256", shown(text)));
}

std::string_view to_string(token_errc code) noexcept {
    switch (code) {
        case token_errc::malformed:
            return "invalid_token";
        case token_errc::unsupported_alg:
            return "unsupported_algorithm";
        case token_errc::bad_signature:
            return "bad_signature";
        case token_errc::expired:
            return "token_expired";
        case token_errc::not_yet_valid:
            return "token_not_yet_valid";
        case token_errc::wrong_audience:
            return "wrong_audience";
        case token_errc::wrong_issuer:
            return "wrong_issuer";
        case token_errc::missing_claim:
            return "missing_claim";
        case token_errc::invalid_claim:
            return "invalid_claim";
        case token_errc::wrong_type:
            return "wrong_token_type";
    }
    return "invalid_token";
}

bool valid_name_glob(std::string_view glob) noexcept {
    if (glob.empty() || glob.size() > 63) return false;
    for (char c : glob)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '*' || c == '?'))
            return false;
    return true;
}

bool may_publish(const tenant_policy& policy, std::string_view name) noexcept {
    if (!valid_label(name)) return false;
    for (const auto& glob : policy.allow)
        if (core::glob_match(glob, name, true)) return true;
    return false;
}

token_result<tenant_policy> map_claims(std::string_view claims_json, const claim_rules& rules,
                                       std::chrono::system_clock::time_point now) {
    if (claims_json.size() > max_claims_bytes)
        return tl::unexpected(refuse(token_errc::malformed, "token claims are too large"));
    auto claims = json::parse(claims_json, nullptr, false);
    if (claims.is_discarded() || !claims.is_object())
        return tl::unexpected(refuse(token_errc::malformed, "token claims are not a JSON object"));
    const double now_s = std::chrono::duration<double>(now.time_since_epoch()).count();
    const auto leeway = static_cast<double>(rules.leeway.count());
    auto missing = [](std::string_view claim, std::string_view hint) {
        return tl::unexpected(refuse(token_errc::missing_claim,
                                     fmt::format("token has no \"{}\" claim; {}", claim, hint)));
    };
    auto invalid = [](std::string message) {
        return tl::unexpected(refuse(token_errc::invalid_claim, std::move(message)));
    };

    // A visitor token (visitor_token.hpp) never attaches a tunnel.
    if (auto typ = claims.find("typ"); typ != claims.end() && *typ == "tunnel-visitor")
        return tl::unexpected(refuse(token_errc::wrong_type,
                                     "this is a visitor token; attaching a tunnel needs a tunnel "
                                     "token (tunnel token without --visitor)"));

    tenant_policy policy;
    // exp: required.
    auto exp_it = claims.find("exp");
    if (exp_it == claims.end())
        return missing("exp", "tokens must expire: mint it with a ttl (tunnel token --ttl 1h)");
    auto exp = numeric(*exp_it);
    // Before year 2200: system_clock counts nanoseconds in 64 bits (to 2262).
    if (!exp || *exp < 0 || *exp > 7.2e9)
        return invalid("\"exp\" must be a NumericDate (seconds since 1970) before the year 2200");
    if (now_s >= *exp + leeway)
        return tl::unexpected(
            refuse(token_errc::expired, fmt::format("token expired {} s ago; mint a new one",
                                                    static_cast<long long>(now_s - *exp))));
    policy.expires = std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::duration<double>(*exp)));

    if (auto nbf_it = claims.find("nbf"); nbf_it != claims.end()) {
        auto nbf = numeric(*nbf_it);
        if (!nbf) return invalid("\"nbf\" must be a NumericDate (seconds since 1970)");
        if (now_s + leeway < *nbf)
            return tl::unexpected(refuse(token_errc::not_yet_valid,
                                         fmt::format("token is not valid for another {} s (nbf); "
                                                     "check the clocks of the minter and the relay",
                                                     static_cast<long long>(*nbf - now_s))));
    }
    if (auto iat_it = claims.find("iat"); iat_it != claims.end()) {
        auto iat = numeric(*iat_it);
        if (!iat) return invalid("\"iat\" must be a NumericDate (seconds since 1970)");
        if (now_s + leeway < *iat)
            return tl::unexpected(refuse(token_errc::not_yet_valid,
                                         fmt::format("token was issued {} s in the future (iat); "
                                                     "check the clocks of the minter and the relay",
                                                     static_cast<long long>(*iat - now_s))));
    }
    if (rules.audience) {
        auto aud = claims.find("aud");
        bool ok = false;
        if (aud != claims.end() && aud->is_string())
            ok = aud->get_ref<const std::string&>() == *rules.audience;
        if (aud != claims.end() && aud->is_array())
            for (const auto& a : *aud)
                ok = ok || (a.is_string() && a.get_ref<const std::string&>() == *rules.audience);
        // The 401 body does not name the configured audience (it would tell a
        // stranger what to put in a forged or phished token); the log does.
        if (!ok)
            return tl::unexpected(token_error{
                token_errc::wrong_audience,
                aud == claims.end() ? "token has no \"aud\" claim, which this relay requires; "
                                      "mint it for this relay"
                                    : "token is not for this relay (wrong audience); mint it for "
                                      "this relay",
                aud == claims.end()
                    ? fmt::format("token has no \"aud\" claim; this relay requires audience \"{}\"",
                                  shown(*rules.audience))
                    : fmt::format("token audience {} is not \"{}\"", shown(aud->dump()),
                                  shown(*rules.audience))});
    }
    if (rules.issuer) {
        auto iss = claims.find("iss");
        if (iss == claims.end() || !iss->is_string() ||
            iss->get_ref<const std::string&>() != *rules.issuer)
            return tl::unexpected(token_error{
                token_errc::wrong_issuer,
                iss == claims.end() ? "token has no \"iss\" claim, which this relay requires; "
                                      "mint it with the issuer this relay trusts"
                                    : "token issuer is not one this relay trusts",
                iss == claims.end()
                    ? fmt::format("token has no \"iss\" claim; this relay requires issuer \"{}\"",
                                  shown(*rules.issuer))
                    : fmt::format("token issuer {} is not \"{}\", the issuer this relay trusts",
                                  shown(iss->dump()), shown(*rules.issuer))});
    }

    auto sub = claims.find("sub");
    if (sub == claims.end())
        return missing("sub", "the subject names the tenant (tunnel token --tenant T)");
    if (!sub->is_string() || !valid_label(sub->get_ref<const std::string&>()))
        return invalid("\"sub\" (the tenant) must be 1-63 characters of a-z, 0-9 and single '-'");
    policy.tenant = sub->get<std::string>();

    auto allow = claims.find("allow");
    if (allow == claims.end())
        return missing("allow",
                       "it lists the service names the tenant may publish (--allow 'NAME,...')");
    if (!allow->is_array() || allow->empty() || allow->size() > max_allow_entries)
        return invalid(fmt::format("\"allow\" must be a non-empty list of at most {} name globs",
                                   max_allow_entries));
    for (const auto& g : *allow) {
        if (!g.is_string()) return invalid("\"allow\" entries must be strings");
        const auto& s = g.get_ref<const std::string&>();
        if (!valid_name_glob(s))
            return invalid(fmt::format(
                "\"allow\" entry \"{}\" is not a name glob (a-z, 0-9, '-', '*', '?')", shown(s)));
        policy.allow.push_back(s);
    }

    policy.max_streams = rules.default_max_streams;
    if (auto ms = claims.find("max_streams"); ms != claims.end()) {
        if (!ms->is_number_integer() || ms->get<long long>() < 1 || ms->get<long long>() > 1000000)
            return invalid("\"max_streams\" must be a whole number from 1 to 1000000");
        policy.max_streams = static_cast<unsigned>(ms->get<long long>());
    }
    // Per-tenant caps: a claim narrows the relay's limit, never widens it.
    auto narrowed = [&](const char* claim, unsigned limit, unsigned& out) -> bool {
        out = limit;
        auto it = claims.find(claim);
        if (it == claims.end()) return true;
        if (!it->is_number_integer() || it->get<long long>() < 1 || it->get<long long>() > 1000000)
            return false;
        out = std::min(limit, static_cast<unsigned>(it->get<long long>()));
        return true;
    };
    if (!narrowed("max_tunnels", rules.max_tunnels, policy.max_tunnels))
        return invalid("\"max_tunnels\" must be a whole number from 1 to 1000000");
    if (!narrowed("max_names", rules.max_names, policy.max_names))
        return invalid("\"max_names\" must be a whole number from 1 to 1000000");
    if (auto g = claims.find("lease_grace"); g != claims.end()) {
        if (!g->is_number_integer() || g->get<long long>() < 0 || g->get<long long>() > 86400)
            return invalid("\"lease_grace\" must be a whole number of seconds from 0 to 86400");
        policy.lease_grace = std::chrono::seconds(g->get<long long>());
    }
    policy.rps = rules.default_rps;
    if (auto rps = claims.find("rps"); rps != claims.end()) {
        auto v = numeric(*rps);
        if (!v || *v <= 0 || *v > 1e6)
            return invalid("\"rps\" must be a number > 0 and <= 1000000");
        policy.rps = *v;
    }
    if (auto access = claims.find("access"); access != claims.end()) {
        auto modes = parse_access_claim(*access);
        if (!modes) return invalid(modes.error().message);
        policy.access = *modes;
    }
    if (auto jti = claims.find("jti"); jti != claims.end()) {
        const bool ok = jti->is_string() && jti->get_ref<const std::string&>().size() <= 64 &&
                        std::all_of(jti->get_ref<const std::string&>().begin(),
                                    jti->get_ref<const std::string&>().end(),
                                    [](char c) { return c > 0x20 && c < 0x7f; });
        if (!ok) return invalid("\"jti\" must be a string of at most 64 printable characters");
        policy.id = jti->get<std::string>();
    }
    return policy;
}

core::result<std::string> read_secret_file(const std::string& path) {
    auto text = read_file(path, "JWT secret file");
    if (!text) return tl::unexpected(text.error());
    while (!text->empty() && std::isspace(static_cast<unsigned char>(text->back())))
        text->pop_back();
    if (text->empty())
        return core::fail(
            errc::invalid_argument,
            fmt::format("JWT secret file {} is empty; write a random secret into it, e.g. "
                        "`head -c 32 /dev/urandom | base64 > {}`",
                        path, path));
    if (text->size() < 16)
        return core::fail(
            errc::invalid_argument,
            fmt::format(
                "JWT secret in {} is {} bytes; HS256 needs at least 16 (32 recommended), e.g. "
                "`head -c 32 /dev/urandom | base64 > {}`",
                path, text->size(), path));
    return std::move(*text);
}

token_verifier::token_verifier(verifier_options options, std::vector<key_entry> keys,
                               std::string fingerprint)
    : options_(std::move(options)), keys_(std::move(keys)), fingerprint_(std::move(fingerprint)) {}

core::result<token_verifier> token_verifier::load(const verifier_options& options) {
    using source = verifier_options::key_source;
    std::vector<key_entry> keys;
    std::string fingerprint_input;
    switch (options.source) {
        case source::secret_file: {
            if (options.algorithm != jwt_algorithm::hs256)
                return core::fail(errc::invalid_argument,
                                  fmt::format("jwt.secret_file is for HS256; for {} use "
                                              "jwt.public_key_file or jwt.jwks_file",
                                              to_string(options.algorithm)));
            auto secret = read_secret_file(options.path);
            if (!secret) return tl::unexpected(secret.error());
            keys.push_back({"", jwt_algorithm::hs256, *secret});
            fingerprint_input = std::move(*secret);
            break;
        }
        case source::public_key_file: {
            auto pem = read_file(options.path, "JWT public key file");
            if (!pem) return tl::unexpected(pem.error());
            if (auto why = check_public_pem(*pem, options.algorithm))
                return core::fail(errc::invalid_argument,
                                  fmt::format("JWT public key file {} {}", options.path, *why));
            keys.push_back({"", options.algorithm, *pem});
            fingerprint_input = std::move(*pem);
            break;
        }
        case source::jwks_file: {
            if (options.algorithm == jwt_algorithm::hs256)
                return core::fail(
                    errc::invalid_argument,
                    "jwt.jwks_file holds public keys: set jwt.algorithm to RS256 or ES256");
            auto text = read_file(options.path, "JWKS file");
            if (!text) return tl::unexpected(text.error());
            auto all = jwks_to_pem(*text);
            if (!all)
                return core::fail(
                    errc::invalid_argument,
                    fmt::format("JWKS file {}: {}", options.path, all.error().message));
            for (auto& k : *all)
                if (k.algorithm == options.algorithm) {
                    fingerprint_input += k.material;
                    keys.push_back(std::move(k));
                }
            if (keys.empty())
                return core::fail(errc::invalid_argument,
                                  fmt::format("JWKS file {} has no {} key", options.path,
                                              to_string(options.algorithm)));
            break;
        }
    }
    auto fp = core::sha256_fingerprint(fingerprint_input);
    return token_verifier(options, std::move(keys), std::move(fp));
}

namespace {

// libjwt 1.10 compares HMAC signatures with strcmp (jwt-openssl.c,
// jwt_verify_sha_hmac), which leaks how many leading characters of a forged
// signature are right. HS256 tokens are therefore checked here first, in
// constant time; libjwt only ever sees tokens whose MAC is already known good.
bool hs256_signature_matches(std::string_view signing_input, std::string_view signature_b64,
                             const std::string& secret) {
    auto signature = core::base64url_decode(signature_b64);
    if (!signature || signature->size() != 32) return false;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
             reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(),
             mac, &mac_len) == nullptr ||
        mac_len != 32)
        return false;
    return CRYPTO_memcmp(mac, signature->data(), 32) == 0;
}

}  // namespace

token_result<tenant_policy> token_verifier::verify(std::string_view token) const {
    return verify(token, std::chrono::system_clock::now());
}

token_result<tenant_policy> token_verifier::verify(
    std::string_view token, std::chrono::system_clock::time_point now) const {
    auto claims = verified_claims(token);
    if (!claims) return tl::unexpected(claims.error());
    return map_claims(*claims, options_.rules, now);
}

token_result<std::string> token_verifier::verified_claims(std::string_view token) const {
    auto malformed = [](std::string why) {
        return tl::unexpected(refuse(token_errc::malformed, std::move(why)));
    };
    if (token.empty()) return malformed("the bearer token is empty");
    if (token.size() > max_token_bytes)
        return malformed(fmt::format("token is longer than {} bytes", max_token_bytes));
    auto dot1 = token.find('.');
    auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
    if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos)
        return malformed("token is not a JWT (header.payload.signature)");
    auto header_bytes = core::base64url_decode(token.substr(0, dot1));
    auto header =
        header_bytes ? json::parse(*header_bytes, nullptr, false) : json(json::value_t::discarded);
    if (header.is_discarded() || !header.is_object() || !header.contains("alg") ||
        !header["alg"].is_string())
        return malformed("token header is not base64url JSON with an \"alg\"");
    const auto& alg_text = header["alg"].get_ref<const std::string&>();
    const auto expected = options_.algorithm;
    auto alg = parse_jwt_algorithm(alg_text);
    if (!alg || *alg != expected || dot2 + 1 == token.size())
        return tl::unexpected(
            refuse(token_errc::unsupported_alg,
                   fmt::format("token is signed with \"{}\"; this relay accepts only {} tokens",
                               shown(alg_text), to_string(expected))));
    std::string kid;
    if (auto k = header.find("kid"); k != header.end() && k->is_string())
        kid = k->get<std::string>();

    const std::string nul_terminated(token);
    bool kid_known = kid.empty();
    for (const auto& key : keys_) {
        if (key.algorithm != expected) continue;
        if (!kid.empty() && !key.kid.empty() && key.kid != kid) continue;
        kid_known = true;
        if (expected == jwt_algorithm::hs256 &&
            !hs256_signature_matches(token.substr(0, dot2), token.substr(dot2 + 1), key.material))
            continue;
        jwt_t* raw = nullptr;
        int rc = jwt_decode(&raw, nul_terminated.c_str(),
                            reinterpret_cast<const unsigned char*>(key.material.data()),
                            static_cast<int>(key.material.size()));
        jwt_handle decoded(raw);
        if (rc != 0 || !decoded) continue;
        // libjwt 1.10 verifies with the token's algorithm: check it once more (ARCHITECTURE §5).
        if (jwt_get_alg(decoded.get()) != to_libjwt(expected)) continue;
        jwt_string claims(jwt_get_grants_json(decoded.get(), nullptr));
        if (!claims) return malformed("token claims are not a JSON object");
        return std::string(claims.get());
    }
    if (!kid_known)
        return tl::unexpected(refuse(
            token_errc::bad_signature,
            fmt::format("token names key id \"{}\", which this relay does not have", shown(kid))));
    return tl::unexpected(
        refuse(token_errc::bad_signature,
               "token signature does not verify with this relay's key; mint it with the relay's "
               "secret or signing key"));
}

}  // namespace tunnel::relay
