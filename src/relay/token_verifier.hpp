// Bearer tokens of the relay (ARCHITECTURE §5, RELAY contract): JWTs signed
// HS256 (shared secret file), RS256/ES256 (public key PEM file) or by a key
// of a JWKS file, verified with libjwt, then mapped to a tenant_policy.
//
// libjwt 1.10 verifies with whatever algorithm the token names, so the
// algorithm configured for the key is compared with the token's header
// before and after decoding; `alg: none` is always refused. libjwt checks no
// claims: exp (required), nbf, iat, aud and iss are checked here with a
// small leeway.
//
// Every refusal is a token_error whose message says what was wrong and how
// to fix it, fit for a 401 JSON body and the audit log; no message ever
// contains the token.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "core/error.hpp"
#include "relay/access_mode.hpp"

namespace tunnel::relay {

enum class jwt_algorithm { hs256, rs256, es256 };

[[nodiscard]] std::string_view to_string(jwt_algorithm alg) noexcept;  // "HS256", ...
// Accepts "HS256", "RS256", "ES256" (case-insensitive).
[[nodiscard]] core::result<jwt_algorithm> parse_jwt_algorithm(std::string_view text);

// Why a token was refused. to_string gives the short code of the JSON body
// ({"error": "<code>", ...}).
enum class token_errc {
    malformed,        // "invalid_token": not a JWT, bad base64/JSON
    unsupported_alg,  // "unsupported_algorithm": alg none or not the configured one
    bad_signature,    // "bad_signature": no configured key verifies it
    expired,          // "token_expired"
    not_yet_valid,    // "token_not_yet_valid": nbf/iat in the future
    wrong_audience,   // "wrong_audience"
    wrong_issuer,     // "wrong_issuer"
    missing_claim,    // "missing_claim": sub, exp or allow absent
    invalid_claim,    // "invalid_claim": a claim of the wrong type or value
    wrong_type,       // "wrong_token_type": a visitor token where a tunnel token belongs, or back
};
[[nodiscard]] std::string_view to_string(token_errc code) noexcept;

struct token_error {
    token_errc code;
    std::string message;   // for the caller (the 401 body): never the relay's configured aud/iss
    std::string detail{};  // for the relay's log only (may name them); empty = same as message
};

template <class T>
using token_result = tl::expected<T, token_error>;

// What a verified token lets its tenant do.
struct tenant_policy {
    std::string tenant;                         // `sub`
    std::vector<std::string> allow;             // `allow`: service-name globs
    unsigned max_streams = 0;                   // `max_streams` or the configured default
    double rps = 0;                             // `rps` or the configured default
    access_modes access = access_modes::all();  // `access`: visitor access modes it may choose
    unsigned max_tunnels = 0;  // `max_tunnels`, at most the configured per-tenant limit
    unsigned max_names = 0;    // `max_names`, at most the configured per-tenant limit
    // `lease_grace` (seconds, 0..86400): shortens leases.grace, never lengthens it.
    std::optional<std::chrono::seconds> lease_grace;
    std::chrono::system_clock::time_point expires;  // `exp`
    // `jti` (<= 64 printable characters): what `tunnel token --revoke` names.
    // Empty when the token has none: such a token cannot be revoked by ID.
    std::string id{};
};

// An `allow` entry: 1..63 characters of a-z, 0-9, '-', '*', '?'.
[[nodiscard]] bool valid_name_glob(std::string_view glob) noexcept;

// True when `name` (a service name) matches one of the policy's globs
// (core::glob_match; names are lower case, so is the match).
[[nodiscard]] bool may_publish(const tenant_policy& policy, std::string_view name) noexcept;

// Claim rules and defaults applied after the signature was verified.
struct claim_rules {
    std::optional<std::string> audience;  // `aud` must equal it or (array) contain it
    std::optional<std::string> issuer;    // `iss` must equal it
    std::chrono::seconds leeway{30};      // clock skew allowed for exp/nbf/iat
    unsigned default_max_streams = 64;    // when `max_streams` is absent
    double default_rps = 50;              // when `rps` is absent
    // Per-tenant caps; the `max_tunnels` / `max_names` claims may only narrow them.
    unsigned max_tunnels = 16;
    unsigned max_names = 64;
};

// The pure claims -> policy mapping (fuzzed by tests/fuzz/jwt_claims_fuzz):
// `claims_json` is the token's decoded payload. A visitor token (`typ`
// "tunnel-visitor", see visitor_token.hpp) is refused with wrong_type. The
// optional `access` claim (a list of "public", "token", "basic", "ip") narrows
// the visitor access modes the tenant may choose; without it, all four.
[[nodiscard]] token_result<tenant_policy> map_claims(std::string_view claims_json,
                                                     const claim_rules& rules,
                                                     std::chrono::system_clock::time_point now);

// Where the verification key comes from. Exactly one of the three files.
struct verifier_options {
    enum class key_source { secret_file, public_key_file, jwks_file };
    key_source source = key_source::secret_file;
    std::string path;
    // The algorithm tokens must use. For a JWKS file a key's own `alg`
    // (or its type: RSA -> RS256, EC P-256 -> ES256) must match it too.
    jwt_algorithm algorithm = jwt_algorithm::hs256;
    claim_rules rules;
};

// Loaded keys; immutable after load, so verify() may run on many threads.
class token_verifier {
  public:
    // Reads the key file(s). Fails (errc::invalid_argument / not_found) on a
    // missing or unreadable file, an empty or short (< 16 bytes) secret, a
    // PEM that is not a public key of the algorithm's type, a JWKS without
    // a usable key. Trailing whitespace of a secret file is ignored.
    [[nodiscard]] static core::result<token_verifier> load(const verifier_options& options);

    [[nodiscard]] token_result<tenant_policy> verify(std::string_view token) const;
    [[nodiscard]] token_result<tenant_policy> verify(
        std::string_view token, std::chrono::system_clock::time_point now) const;
    // The token's decoded claims (JSON) once its signature verified with one
    // of the keys and its `alg` is the configured one; no claim is checked.
    // verify() maps them with map_claims; visitor tokens with
    // map_visitor_claims (visitor_token.hpp).
    [[nodiscard]] token_result<std::string> verified_claims(std::string_view token) const;

    // "SHA256:<base64>" of the key material, for logs (never the key itself).
    [[nodiscard]] const std::string& key_fingerprint() const noexcept { return fingerprint_; }
    [[nodiscard]] const verifier_options& options() const noexcept { return options_; }

    struct key_entry {
        std::string kid;          // JWKS `kid`; empty for single-key files
        jwt_algorithm algorithm;  // what tokens verified with this key must use
        std::string material;     // secret bytes or public key PEM
    };

  private:
    token_verifier(verifier_options options, std::vector<key_entry> keys, std::string fingerprint);

    verifier_options options_;
    std::vector<key_entry> keys_;
    std::string fingerprint_;
};

// Reads a secret file as token_verifier and the token minter do: the bytes
// with trailing whitespace removed; fails when missing, empty or < 16 bytes.
[[nodiscard]] core::result<std::string> read_secret_file(const std::string& path);

// The PEM public keys of a JWKS document (RSA and EC P-256 keys; others are
// skipped). Fails when the JSON is invalid or no key is usable.
[[nodiscard]] core::result<std::vector<token_verifier::key_entry>> jwks_to_pem(
    std::string_view jwks_json);

}  // namespace tunnel::relay
