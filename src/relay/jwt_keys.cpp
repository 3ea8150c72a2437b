// Public keys for RS256/ES256 tokens: PEM checks and JWKS documents to PEM
// (OpenSSL 3 EVP_PKEY_fromdata). Split from token_verifier.cpp.
#include "relay/jwt_keys.hpp"

#include <memory>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <nlohmann/json.hpp>

#include "core/encoding.hpp"
#include "core/log_text.hpp"

namespace tunnel::relay {

namespace {

using json = nlohmann::json;
using core::errc;

// RAII for the C handles used here (STYLE 4).
struct bio_deleter {
    void operator()(BIO* p) const noexcept { BIO_free(p); }
};
using bio_handle = std::unique_ptr<BIO, bio_deleter>;
struct pkey_deleter {
    void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
using pkey_handle = std::unique_ptr<EVP_PKEY, pkey_deleter>;
struct pkey_ctx_deleter {
    void operator()(EVP_PKEY_CTX* p) const noexcept { EVP_PKEY_CTX_free(p); }
};
using pkey_ctx_handle = std::unique_ptr<EVP_PKEY_CTX, pkey_ctx_deleter>;
struct bn_deleter {
    void operator()(BIGNUM* p) const noexcept { BN_free(p); }
};
using bn_handle = std::unique_ptr<BIGNUM, bn_deleter>;
struct param_bld_deleter {
    void operator()(OSSL_PARAM_BLD* p) const noexcept { OSSL_PARAM_BLD_free(p); }
};
using param_bld_handle = std::unique_ptr<OSSL_PARAM_BLD, param_bld_deleter>;
struct params_deleter {
    void operator()(OSSL_PARAM* p) const noexcept { OSSL_PARAM_free(p); }
};
using params_handle = std::unique_ptr<OSSL_PARAM, params_deleter>;

std::string pem_of(EVP_PKEY* key) {
    bio_handle bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PUBKEY(bio.get(), key) != 1) return {};
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

}  // namespace

std::optional<std::string> check_public_pem(const std::string& pem, jwt_algorithm alg) {
    bio_handle bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    pkey_handle key(bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr);
    if (!key)
        return "is not a PEM public key (-----BEGIN PUBLIC KEY-----); export it with `openssl pkey "
               "-pubout`";
    if (alg == jwt_algorithm::rs256 && !EVP_PKEY_is_a(key.get(), "RSA"))
        return "is not an RSA public key, but the algorithm is RS256";
    if (alg == jwt_algorithm::es256) {
        if (!EVP_PKEY_is_a(key.get(), "EC"))
            return "is not an EC public key, but the algorithm is ES256";
        char group[64] = {};
        std::size_t len = 0;
        if (EVP_PKEY_get_utf8_string_param(key.get(), OSSL_PKEY_PARAM_GROUP_NAME, group,
                                           sizeof group, &len) != 1 ||
            std::string_view(group) != "prime256v1")
            return "is not a P-256 (prime256v1) key, which ES256 requires";
    }
    if (alg == jwt_algorithm::hs256)
        return "is a public key, but HS256 needs a shared secret (jwt.secret_file)";
    return std::nullopt;
}

namespace {

pkey_handle key_from_params(const char* type, OSSL_PARAM_BLD* bld) {
    params_handle params(OSSL_PARAM_BLD_to_param(bld));
    pkey_ctx_handle ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
    EVP_PKEY* raw = nullptr;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1)
        return nullptr;
    return pkey_handle(raw);
}

std::optional<std::string> b64_member(const json& jwk, const char* name) {
    auto it = jwk.find(name);
    if (it == jwk.end() || !it->is_string()) return std::nullopt;
    return core::base64url_decode(it->get_ref<const std::string&>());
}

// One JWK -> PEM; nullopt with `why` set when the key is not usable.
std::optional<token_verifier::key_entry> jwk_to_entry(const json& jwk, std::string& why) {
    if (!jwk.is_object()) return why = "not an object", std::nullopt;
    auto kty = jwk.value("kty", std::string());
    std::string kid =
        jwk.contains("kid") && jwk["kid"].is_string() ? jwk["kid"].get<std::string>() : "";
    if (auto use = jwk.find("use"); use != jwk.end() && *use != "sig")
        return why = "use is not sig", std::nullopt;
    std::optional<jwt_algorithm> declared;
    if (auto alg = jwk.find("alg"); alg != jwk.end()) {
        auto parsed = alg->is_string()
                          ? parse_jwt_algorithm(alg->get<std::string>())
                          : core::result<jwt_algorithm>(core::fail(errc::invalid_argument, ""));
        if (!parsed) return why = "alg is not RS256 or ES256", std::nullopt;
        declared = *parsed;
    }
    param_bld_handle bld(OSSL_PARAM_BLD_new());
    if (!bld) return why = "out of memory", std::nullopt;
    pkey_handle key;
    jwt_algorithm alg{};
    if (kty == "RSA") {
        auto n = b64_member(jwk, "n");
        auto e = b64_member(jwk, "e");
        if (!n || !e || n->empty() || e->empty())
            return why = "RSA key without valid n and e", std::nullopt;
        bn_handle bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n->data()),
                                 static_cast<int>(n->size()), nullptr));
        bn_handle bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e->data()),
                                 static_cast<int>(e->size()), nullptr));
        if (!bn_n || !bn_e ||
            OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
            OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1)
            return why = "RSA parameters rejected", std::nullopt;
        key = key_from_params("RSA", bld.get());
        alg = jwt_algorithm::rs256;
    } else if (kty == "EC") {
        if (jwk.value("crv", std::string()) != "P-256")
            return why = "EC key on a curve other than P-256", std::nullopt;
        auto x = b64_member(jwk, "x");
        auto y = b64_member(jwk, "y");
        if (!x || !y || x->size() != 32 || y->size() != 32)
            return why = "EC key without 32-byte x and y", std::nullopt;
        std::string point = "\x04" + *x + *y;
        static const char group[] = "prime256v1";
        if (OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
            OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                             point.size()) != 1)
            return why = "EC parameters rejected", std::nullopt;
        key = key_from_params("EC", bld.get());
        alg = jwt_algorithm::es256;
    } else {
        return why = fmt::format("kty \"{}\" is not RSA or EC", core::log_text(kty, 64)),
               std::nullopt;
    }
    if (!key) return why = "OpenSSL refused the key parameters", std::nullopt;
    if (declared && *declared != alg) return why = "alg does not fit the key type", std::nullopt;
    auto pem = pem_of(key.get());
    if (pem.empty()) return why = "cannot export the key as PEM", std::nullopt;
    return token_verifier::key_entry{std::move(kid), alg, std::move(pem)};
}

}  // namespace

core::result<std::vector<token_verifier::key_entry>> jwks_to_pem(std::string_view jwks_json) {
    auto doc = json::parse(jwks_json, nullptr, false);
    if (doc.is_discarded() || !doc.is_object() || !doc.contains("keys") || !doc["keys"].is_array())
        return core::fail(errc::invalid_argument,
                          "not a JWKS document: expected {\"keys\": [...]}");
    std::vector<token_verifier::key_entry> out;
    std::vector<std::string> skipped;
    for (std::size_t i = 0; i < doc["keys"].size(); ++i) {
        std::string why;
        if (auto entry = jwk_to_entry(doc["keys"][i], why))
            out.push_back(std::move(*entry));
        else
            skipped.push_back(fmt::format("keys[{}]: {}", i, why));
    }
    if (out.empty())
        return core::fail(
            errc::invalid_argument,
            fmt::format("no usable RSA or EC P-256 signing key{}{}", skipped.empty() ? "" : " (",
                        skipped.empty() ? "" : fmt::format("{})", fmt::join(skipped, "; "))));
    return out;
}

}  // namespace tunnel::relay
