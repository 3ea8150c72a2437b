#include "ssh/certificate.hpp"

#include <cctype>
#include <ctime>
#include <memory>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <fmt/format.h>

#include "core/log_text.hpp"
#include "ssh/wire.hpp"

namespace tunnel::ssh {

namespace {

using core::errc;
using core::fail;

constexpr std::string_view cert_suffix = "-cert-v01@openssh.com";
constexpr std::size_t max_principals = 256;  // OpenSSH's SSHKEY_CERT_MAX_PRINCIPALS
constexpr std::uint64_t no_expiry = ~std::uint64_t{0};

core::error malformed(std::string_view what) {
    return {errc::protocol_error, fmt::format("malformed certificate: {}", what)};
}

// The list of names in a critical-options or extensions field (each a name
// followed by its data string).
std::optional<std::vector<std::string>> option_names(std::string_view field) {
    std::vector<std::string> names;
    wire::reader r(field);
    while (r.ok() && !r.at_end()) {
        auto name = r.string();
        auto data = r.string();
        if (!name || !data) return std::nullopt;
        names.emplace_back(*name);
    }
    return names;
}

// The number of key fields after the nonce, per plain key type.
int key_field_count(std::string_view key_type) {
    if (key_type == "ssh-ed25519") return 1;                 // pk
    if (key_type == "sk-ssh-ed25519@openssh.com") return 2;  // pk, application
    if (key_type.starts_with("ecdsa-sha2-")) return 2;       // curve, Q
    if (key_type == "sk-ecdsa-sha2-nistp256@openssh.com") return 3;
    if (key_type == "ssh-rsa") return 2;  // e, n
    return 0;
}

struct pkey_deleter {
    void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
struct pkey_ctx_deleter {
    void operator()(EVP_PKEY_CTX* p) const noexcept { EVP_PKEY_CTX_free(p); }
};
struct md_ctx_deleter {
    void operator()(EVP_MD_CTX* p) const noexcept { EVP_MD_CTX_free(p); }
};
struct bn_deleter {
    void operator()(BIGNUM* p) const noexcept { BN_free(p); }
};
struct param_bld_deleter {
    void operator()(OSSL_PARAM_BLD* p) const noexcept { OSSL_PARAM_BLD_free(p); }
};
struct params_deleter {
    void operator()(OSSL_PARAM* p) const noexcept { OSSL_PARAM_free(p); }
};
struct ecdsa_sig_deleter {
    void operator()(ECDSA_SIG* p) const noexcept { ECDSA_SIG_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_deleter>;
using bn_ptr = std::unique_ptr<BIGNUM, bn_deleter>;

// A positive mpint (RFC 4251) as a BIGNUM; nullptr for a negative one.
bn_ptr positive_mpint(std::string_view bytes) {
    if (!bytes.empty() && (static_cast<unsigned char>(bytes[0]) & 0x80)) return nullptr;
    return bn_ptr(BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()),
                            static_cast<int>(bytes.size()), nullptr));
}

pkey_ptr from_params(const char* algorithm, const OSSL_PARAM* params) {
    std::unique_ptr<EVP_PKEY_CTX, pkey_ctx_deleter> ctx(
        EVP_PKEY_CTX_new_from_name(nullptr, algorithm, nullptr));
    EVP_PKEY* out = nullptr;
    if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &out, EVP_PKEY_PUBLIC_KEY, const_cast<OSSL_PARAM*>(params)) !=
            1)
        return nullptr;
    return pkey_ptr(out);
}

bool digest_verify(EVP_PKEY* key, const EVP_MD* md, std::string_view sig, std::string_view data) {
    std::unique_ptr<EVP_MD_CTX, md_ctx_deleter> ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key) != 1) return false;
    return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()),
                            sig.size(), reinterpret_cast<const unsigned char*>(data.data()),
                            data.size()) == 1;
}

core::result<void> verify_ed25519(wire::reader& ca, std::string_view sig, std::string_view data) {
    auto pk = ca.string();
    if (!pk || pk->size() != 32 || !ca.at_end())
        return tl::unexpected(malformed("bad Ed25519 CA key"));
    if (sig.size() != 64) return tl::unexpected(malformed("bad Ed25519 signature length"));
    pkey_ptr key(EVP_PKEY_new_raw_public_key(
        EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(pk->data()), pk->size()));
    if (!key) return tl::unexpected(malformed("unusable Ed25519 CA key"));
    if (!digest_verify(key.get(), nullptr, sig, data))
        return fail(errc::denied, "the CA signature on the certificate is not valid");
    return {};
}

core::result<void> verify_ecdsa(std::string_view ca_type, wire::reader& ca, std::string_view sig,
                                std::string_view data) {
    const char* group = nullptr;
    const EVP_MD* md = nullptr;
    if (ca_type == "ecdsa-sha2-nistp256") {
        group = "P-256";
        md = EVP_sha256();
    } else if (ca_type == "ecdsa-sha2-nistp384") {
        group = "P-384";
        md = EVP_sha384();
    } else if (ca_type == "ecdsa-sha2-nistp521") {
        group = "P-521";
        md = EVP_sha512();
    } else {
        return fail(errc::protocol_error, fmt::format("unsupported CA key type {}", ca_type));
    }
    auto curve = ca.string();
    auto point = ca.string();
    if (!curve || !point || !ca.at_end() || ca_type.substr(11) != *curve)
        return tl::unexpected(malformed("bad ECDSA CA key"));
    std::string point_copy(*point);
    std::string group_name(group);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group_name.data(), 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point_copy.data(),
                                          point_copy.size()),
        OSSL_PARAM_construct_end()};
    auto key = from_params("EC", params);
    if (!key) return tl::unexpected(malformed("unusable ECDSA CA key"));

    wire::reader rs(sig);
    auto r = rs.string();
    auto s = rs.string();
    if (!r || !s || !rs.at_end()) return tl::unexpected(malformed("bad ECDSA signature"));
    auto r_bn = positive_mpint(*r);
    auto s_bn = positive_mpint(*s);
    std::unique_ptr<ECDSA_SIG, ecdsa_sig_deleter> ecdsa(ECDSA_SIG_new());
    if (!r_bn || !s_bn || !ecdsa || ECDSA_SIG_set0(ecdsa.get(), r_bn.get(), s_bn.get()) != 1)
        return tl::unexpected(malformed("bad ECDSA signature"));
    (void)r_bn.release();  // owned by ecdsa now
    (void)s_bn.release();
    unsigned char* der = nullptr;
    int der_len = i2d_ECDSA_SIG(ecdsa.get(), &der);
    if (der_len <= 0) return tl::unexpected(malformed("bad ECDSA signature"));
    std::string der_sig(reinterpret_cast<const char*>(der), static_cast<std::size_t>(der_len));
    OPENSSL_free(der);
    if (!digest_verify(key.get(), md, der_sig, data))
        return fail(errc::denied, "the CA signature on the certificate is not valid");
    return {};
}

core::result<void> verify_rsa(std::string_view sig_alg, wire::reader& ca, std::string_view sig,
                              std::string_view data) {
    const EVP_MD* md = nullptr;
    if (sig_alg == "rsa-sha2-256")
        md = EVP_sha256();
    else if (sig_alg == "rsa-sha2-512")
        md = EVP_sha512();
    else if (sig_alg == "ssh-rsa")
        return fail(errc::denied,
                    "the certificate is signed with ssh-rsa (SHA-1), which OpenSSH no longer "
                    "accepts from a CA: re-sign it with `ssh-keygen -s CA -t rsa-sha2-512`");
    else
        return tl::unexpected(malformed(
            fmt::format("signature algorithm {} does not fit an RSA CA", core::log_text(sig_alg))));
    auto e = ca.string();
    auto n = ca.string();
    if (!e || !n || !ca.at_end()) return tl::unexpected(malformed("bad RSA CA key"));
    auto e_bn = positive_mpint(*e);
    auto n_bn = positive_mpint(*n);
    if (!e_bn || !n_bn) return tl::unexpected(malformed("bad RSA CA key"));
    if (BN_num_bits(n_bn.get()) < 1024)
        return fail(errc::denied, "the CA's RSA key is shorter than 1024 bits");
    std::unique_ptr<OSSL_PARAM_BLD, param_bld_deleter> bld(OSSL_PARAM_BLD_new());
    if (!bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n_bn.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e_bn.get()) != 1)
        return fail(errc::resource_exhausted, "out of memory checking a certificate");
    std::unique_ptr<OSSL_PARAM, params_deleter> params(OSSL_PARAM_BLD_to_param(bld.get()));
    if (!params) return fail(errc::resource_exhausted, "out of memory checking a certificate");
    auto key = from_params("RSA", params.get());
    if (!key) return tl::unexpected(malformed("unusable RSA CA key"));
    if (!digest_verify(key.get(), md, sig, data))
        return fail(errc::denied, "the CA signature on the certificate is not valid");
    return {};
}

std::string key_label(std::string_view type) {
    if (type == "ssh-ed25519") return "ED25519";
    if (type == "ssh-rsa") return "RSA";
    if (type.starts_with("ecdsa-sha2-")) return "ECDSA";
    if (type.starts_with("sk-ssh-ed25519")) return "ED25519-SK";
    if (type.starts_with("sk-ecdsa")) return "ECDSA-SK";
    return core::log_text(type, 64);
}

}  // namespace

bool is_certificate_type(std::string_view type) noexcept {
    return type.size() > cert_suffix.size() && type.ends_with(cert_suffix);
}

std::string certificate_algorithm_for(std::string_view alg) {
    if (alg == "ssh-ed25519" || alg == "ssh-rsa" || alg == "rsa-sha2-256" ||
        alg == "rsa-sha2-512" || alg == "ecdsa-sha2-nistp256" || alg == "ecdsa-sha2-nistp384" ||
        alg == "ecdsa-sha2-nistp521")
        return std::string(alg) + std::string(cert_suffix);
    if (alg == "sk-ssh-ed25519@openssh.com") return "sk-ssh-ed25519-cert-v01@openssh.com";
    if (alg == "sk-ecdsa-sha2-nistp256@openssh.com")
        return "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com";
    return {};
}

core::result<certificate> parse_certificate(std::string_view blob) {
    wire::reader r(blob);
    certificate c;
    auto type = r.string();
    if (!type) return tl::unexpected(malformed("no key type"));
    c.type = std::string(*type);
    if (!is_certificate_type(c.type))
        return tl::unexpected(malformed(
            fmt::format("{} is a plain key, not a certificate", core::log_text(c.type, 64))));
    if (c.type == "ssh-dss-cert-v01@openssh.com")
        return fail(errc::protocol_error, "DSA certificates are not supported");
    // sk-* plain types keep their "@openssh.com" suffix.
    std::string base = c.type.substr(0, c.type.size() - cert_suffix.size());
    c.key_type = base.starts_with("sk-") ? base + "@openssh.com" : base;
    const int fields = key_field_count(c.key_type);
    if (fields == 0)
        return fail(errc::protocol_error,
                    fmt::format("unsupported certificate type {}", core::log_text(c.type, 64)));

    if (!r.string()) return tl::unexpected(malformed("no nonce"));
    const std::size_t key_start = r.position();
    for (int i = 0; i < fields; ++i)
        if (!r.string()) return tl::unexpected(malformed("truncated public key"));
    c.key_blob.clear();
    wire::put_string(c.key_blob, c.key_type);
    c.key_blob.append(blob.substr(key_start, r.position() - key_start));

    auto serial = r.u64();
    auto role = r.u32();
    auto key_id = r.string();
    auto principals = r.string();
    auto after = r.u64();
    auto before = r.u64();
    auto critical = r.string();
    auto extensions = r.string();
    auto reserved = r.string();
    auto ca_key = r.string();
    if (!serial || !role || !key_id || !principals || !after || !before || !critical ||
        !extensions || !reserved || !ca_key)
        return tl::unexpected(malformed("truncated"));
    c.signed_data = std::string(r.consumed());
    auto signature = r.string();
    if (!signature || !r.at_end()) return tl::unexpected(malformed("bad signature field"));

    c.serial = *serial;
    if (*role != 1 && *role != 2)
        return tl::unexpected(malformed(fmt::format("unknown certificate type {}", *role)));
    c.role = static_cast<certificate_role>(*role);
    c.key_id = std::string(*key_id);
    wire::reader p(*principals);
    while (!p.at_end()) {
        auto name = p.string();
        if (!name) return tl::unexpected(malformed("bad principals list"));
        if (c.principals.size() >= max_principals)
            return tl::unexpected(malformed("more than 256 principals"));
        c.principals.emplace_back(*name);
    }
    c.valid_after = *after;
    c.valid_before = *before;
    auto crit = option_names(*critical);
    auto ext = option_names(*extensions);
    if (!crit || !ext) return tl::unexpected(malformed("bad options"));
    c.critical_options = std::move(*crit);
    c.extensions = std::move(*ext);
    c.ca_key_blob = std::string(*ca_key);
    if (c.ca_key_blob.empty()) return tl::unexpected(malformed("no CA key"));

    wire::reader s(*signature);
    auto sig_alg = s.string();
    auto sig = s.string();
    if (!sig_alg || !sig || !s.at_end()) return tl::unexpected(malformed("bad signature"));
    c.signature_algorithm = std::string(*sig_alg);
    c.signature = std::string(*sig);
    return c;
}

core::result<void> verify_certificate_signature(const certificate& cert) {
    wire::reader ca(cert.ca_key_blob);
    auto ca_type = ca.string();
    if (!ca_type) return tl::unexpected(malformed("bad CA key"));
    if (is_certificate_type(*ca_type))
        return fail(errc::denied, "the certificate is signed by another certificate, not a CA key");
    if (*ca_type == "ssh-ed25519") {
        if (cert.signature_algorithm != "ssh-ed25519")
            return tl::unexpected(malformed("signature algorithm does not fit an Ed25519 CA"));
        return verify_ed25519(ca, cert.signature, cert.signed_data);
    }
    if (ca_type->starts_with("ecdsa-sha2-")) {
        if (cert.signature_algorithm != *ca_type)
            return tl::unexpected(malformed("signature algorithm does not fit the ECDSA CA"));
        return verify_ecdsa(*ca_type, ca, cert.signature, cert.signed_data);
    }
    if (*ca_type == "ssh-rsa")
        return verify_rsa(cert.signature_algorithm, ca, cert.signature, cert.signed_data);
    return fail(errc::protocol_error,
                fmt::format("CA key type {} is not supported (use Ed25519, ECDSA or RSA)",
                            core::log_text(*ca_type, 64)));
}

std::string format_certificate_time(std::uint64_t when) {
    if (when == no_expiry) return "forever";
    if (when == 0) return "the beginning of time";
    if (when > 253402300799ULL) return fmt::format("{} s after 1970", when);  // past 9999
    std::time_t t = static_cast<std::time_t>(when);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
    return buf;
}

core::result<void> check_certificate_time(const certificate& cert, std::int64_t now) {
    const auto n = static_cast<std::uint64_t>(now < 0 ? 0 : now);
    if (n < cert.valid_after)
        return fail(errc::denied, fmt::format("is not valid before {}",
                                              format_certificate_time(cert.valid_after)));
    if (n >= cert.valid_before)
        return fail(errc::denied,
                    fmt::format("expired at {}", format_certificate_time(cert.valid_before)));
    return {};
}

std::string key_blob_fingerprint(std::string_view blob) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(blob.data(), blob.size(), md, &len, EVP_sha256(), nullptr) != 1)
        return "SHA256:?";
    std::string b64(4 * ((len + 2) / 3) + 1, '\0');
    int n =
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), md, static_cast<int>(len));
    b64.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    while (!b64.empty() && b64.back() == '=') b64.pop_back();
    return "SHA256:" + b64;
}

std::string describe_certificate(const certificate& cert) {
    wire::reader ca(cert.ca_key_blob);
    auto ca_type = ca.string();
    std::string principals;
    for (const auto& p : cert.principals)
        principals += (principals.empty() ? "" : ",") + core::log_text(p, 64);
    return fmt::format("ID \"{}\" serial {}, CA {} {}, principals {}", core::log_text(cert.key_id),
                       cert.serial, key_label(ca_type.value_or("?")),
                       key_blob_fingerprint(cert.ca_key_blob),
                       principals.empty() ? "(any)" : principals);
}

std::optional<std::string> decode_base64(std::string_view text) {
    if (text.empty() || text.size() % 4 != 0) return std::nullopt;
    for (char c : text)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/' && c != '=')
            return std::nullopt;
    std::string out(text.size() / 4 * 3, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(text.data()),
                            static_cast<int>(text.size()));
    if (n < 0) return std::nullopt;
    std::size_t pad = 0;
    if (text.back() == '=') ++pad;
    if (text.size() >= 2 && text[text.size() - 2] == '=') ++pad;
    out.resize(static_cast<std::size_t>(n) - pad);
    return out;
}

}  // namespace tunnel::ssh
