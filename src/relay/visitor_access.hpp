// Visitor access control (docs/relay.md "Visitor access"): who may call a
// published name, decided per request before the relay opens a channel to the
// origin, and the visitor's credential removed from what the origin sees.
//
//   public  anyone;
//   token   a visitor token (visitor_token.hpp) as `Authorization: Bearer`, or
//           in the cookie a one-time `GET /_tunnel/login?token=...` on the
//           name's own host sets (303 to `/`), so it never stays in a URL;
//   basic   HTTP Basic against an htpasswd list (htpasswd.hpp);
//   ip      the TCP peer's address in a CIDR allow list (ip_allow_list.hpp).
//
// Everything here is pure (no I/O, no clock of its own): the relay calls
//
//   auto d = check_visitor(request, policy, keys, std::chrono::system_clock::now());
//   if (!d.allowed()) { send(render_visitor_response(d)); close; }  // audit + count d.code
//   else strip_visitor_credentials(head.fields, policy, d);         // then open the channel
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "relay/access_mode.hpp"
#include "relay/htpasswd.hpp"
#include "relay/http_tracker.hpp"
#include "relay/ip_allow_list.hpp"

namespace tunnel::relay {

class revocation_list;

class token_verifier;

// What one published name requires of its callers.
struct access_policy {
    access_mode mode = access_mode::public_;
    ip_allow_list allow_ips;                // mode ip: not empty
    std::shared_ptr<const htpasswd> users;  // mode basic: not empty

    // "public", "token", "basic (3 users)", "ip (10.0.0.0/8,2001:db8::/32)".
    [[nodiscard]] std::string describe() const;
    friend bool operator==(const access_policy& a, const access_policy& b);
};

// The parameters a mode needs are there (users for basic, networks for ip).
[[nodiscard]] core::result<void> validate(const access_policy& policy);

// The request as the relay routed it.
struct visitor_request {
    std::string_view tenant;
    std::string_view name;
    std::string_view method;
    std::string_view target;             // origin-form, after path routing ("/x?y")
    std::span<const http_field> fields;  // the caller's header fields
    std::string_view peer_ip;            // TCP peer as asio prints it ("::ffff:1.2.3.4" ok)
    bool tls = false;                    // the caller came over TLS
    bool host_routed = false;            // Host: name--tenant.domain (not /t/tenant/name)
};

// Relay-wide keys and caches.
struct visitor_keys {
    const token_verifier* tokens = nullptr;  // from visitor_verifier_options; null: no token mode
    password_cache* passwords = nullptr;     // optional (then every basic request hashes)
    // Revoked token IDs (revocation_list.hpp): a token whose jti is in it is
    // refused (401 token_revoked). Null: none checked.
    const revocation_list* revoked = nullptr;
};

enum class visitor_verdict {
    allow,         // proxy it (after strip_visitor_credentials)
    login,         // 303 to "/" with the visitor cookie set
    logout,        // 303 to "/" with the visitor cookie cleared
    bad_request,   // 400 (two Authorization fields, a malformed login URL) / 405
    unauthorized,  // 401 with WWW-Authenticate
    forbidden,     // 403 (address not allowed, token for another service, login off-host)
    unavailable,   // 503: the relay cannot check this mode (no visitor secret configured)
};

enum class visitor_credential { none, bearer, cookie, basic, address };

struct visitor_decision {
    visitor_verdict verdict = visitor_verdict::allow;
    int status = 0;  // 0 when allowed, else 303, 400, 401, 403, 405, 503
    // Short code for the JSON body, metrics and audit (a bounded set): allowed,
    // login, logout, no_credential, bad_credential, expired, wrong_service,
    // wrong_token_type, ip_not_allowed, ambiguous_credential,
    // login_needs_host_routing, bad_login_request, method_not_allowed,
    // not_configured.
    std::string code = "allowed";
    std::string message;              // for the body and the audit log; never a credential
    std::vector<http_field> headers;  // response fields: WWW-Authenticate, Location, Set-Cookie...
    visitor_credential credential = visitor_credential::none;  // what admitted the visitor
    std::string
        principal;  // for the audit log: "public", "user alice", "token <jti>", "ip 10.1.2.3"

    [[nodiscard]] bool allowed() const noexcept { return verdict == visitor_verdict::allow; }
};

// Decides one request. Never does I/O; CPU only (an HMAC for tokens, one
// libcrypt hash for a basic password the cache has not seen).
[[nodiscard]] visitor_decision check_visitor(const visitor_request& request,
                                             const access_policy& policy, const visitor_keys& keys,
                                             std::chrono::system_clock::time_point now);

// Removes the visitor's credential from the fields sent to the origin: the
// visitor cookies (both names, every mode) out of each Cookie field (a field
// left empty is dropped); the Authorization field when a bearer token
// admitted the visitor; every `Authorization: Basic` in basic mode.
void strip_visitor_credentials(std::vector<http_field>& fields, const access_policy& policy,
                               const visitor_decision& decision);

// A complete HTTP/1.1 response for a decision that is not `allow`: status
// line, the decision's headers, `Cache-Control: no-store`,
// `Connection: close` and a JSON body {"error": code, "message": ...}.
[[nodiscard]] std::string render_visitor_response(const visitor_decision& decision);

// ---- the login exchange and the cookie (exposed for tests and the fuzzer)

inline constexpr std::string_view login_path = "/_tunnel/login";
inline constexpr std::string_view logout_path = "/_tunnel/logout";

// "__Host-tunnel_visitor" over TLS (host-only, Secure, Path=/ enforced by
// browsers, so a sibling subdomain cannot plant one), "tunnel_visitor" on
// plain HTTP (dev).
[[nodiscard]] std::string_view visitor_cookie_name(bool tls) noexcept;

// The 303 of a successful login: Location "/", Set-Cookie
// `<name>=<token>; Max-Age=<until expires>; Path=/; HttpOnly; SameSite=Lax`
// (+ `; Secure` over TLS, never a Domain), Cache-Control no-store,
// Referrer-Policy no-referrer.
[[nodiscard]] std::vector<http_field> login_response_headers(
    std::string_view token, std::chrono::system_clock::time_point expires, bool tls,
    std::chrono::system_clock::time_point now);

// The visitor cookie's values in the request's Cookie fields (the name for
// `tls` only, exact and case-sensitive; quotes around a value removed; at most
// 4; values that are not JWT-shaped skipped).
[[nodiscard]] std::vector<std::string> visitor_cookies(std::span<const http_field> fields,
                                                       bool tls);

// The `token` query parameter of a login target ("/_tunnel/login?token=..."):
// exactly one, JWT characters only. nullopt otherwise.
[[nodiscard]] std::optional<std::string> login_token(std::string_view target);

// `Authorization: Basic` credentials, strictly decoded (user must not be
// empty or contain ':'). nullopt when the field is not Basic or malformed.
struct basic_credentials {
    std::string user;
    std::string password;
};
[[nodiscard]] std::optional<basic_credentials> parse_basic_authorization(std::string_view value);

// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
[[nodiscard]] std::optional<std::string> parse_bearer_authorization(std::string_view value);

}  // namespace tunnel::relay
