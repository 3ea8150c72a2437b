#include "relay/visitor_access.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/ascii.hpp"
#include "core/encoding.hpp"
#include "relay/revocation_list.hpp"
#include "relay/token_verifier.hpp"
#include "relay/visitor_token.hpp"

namespace tunnel::relay {

namespace {

constexpr std::size_t max_cookies_checked = 4;
constexpr std::size_t max_visitor_token_bytes = 8192;

using core::iequals;

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// header.payload.signature of base64url characters.
bool jwt_shaped(std::string_view s) {
    if (s.empty() || s.size() > max_visitor_token_bytes) return false;
    if (std::count(s.begin(), s.end(), '.') != 2) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_' || c == '.';
    });
}

// A value that may go into a quoted-string of WWW-Authenticate.
std::string quotable(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 200))
        out += (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? c : '\'';
    return out;
}

std::string realm(const visitor_request& r) {
    return fmt::format("{}/{}", r.tenant, r.name);
}

visitor_decision refuse(visitor_verdict verdict, int status, std::string code,
                        std::string message) {
    visitor_decision d;
    d.verdict = verdict;
    d.status = status;
    d.code = std::move(code);
    d.message = std::move(message);
    return d;
}

visitor_decision allow(visitor_credential how, std::string principal) {
    visitor_decision d;
    d.credential = how;
    d.principal = std::move(principal);
    return d;
}

std::vector<const http_field*> authorization_fields(std::span<const http_field> fields) {
    std::vector<const http_field*> out;
    for (const auto& f : fields)
        if (iequals(f.name, "Authorization")) out.push_back(&f);
    return out;
}

visitor_decision check_ip(const visitor_request& r, const access_policy& p) {
    auto peer = parse_ip_address(r.peer_ip);
    if (peer && p.allow_ips.allows(*peer))
        return allow(visitor_credential::address, "ip " + peer->to_string());
    return refuse(
        visitor_verdict::forbidden, 403, "ip_not_allowed",
        fmt::format("{} accepts callers from its allowed networks only{}", realm(r),
                    peer ? fmt::format("; {} is not in them", peer->to_string()) : std::string()));
}

visitor_decision check_basic(const visitor_request& r, const access_policy& p,
                             const visitor_keys& keys, std::chrono::system_clock::time_point now) {
    if (!p.users || p.users->entries().empty())
        return refuse(visitor_verdict::unavailable, 503, "not_configured",
                      fmt::format("{} asks for basic access but has no users", realm(r)));
    auto challenge = [&](std::string code, std::string message) {
        auto d = refuse(visitor_verdict::unauthorized, 401, std::move(code), std::move(message));
        d.headers.push_back(
            {"WWW-Authenticate", fmt::format("Basic realm=\"{}\", charset=\"UTF-8\"", realm(r))});
        return d;
    };
    auto auth = authorization_fields(r.fields);
    if (auth.size() > 1)
        return refuse(visitor_verdict::bad_request, 400, "ambiguous_credential",
                      "the request has more than one Authorization field");
    if (auth.empty())
        return challenge("no_credential",
                         fmt::format("{} needs a user name and password", realm(r)));
    auto creds = parse_basic_authorization(auth.front()->value);
    if (!creds)
        return challenge("bad_credential",
                         "the Authorization field is not well-formed Basic "
                         "credentials");
    const bool ok = keys.passwords
                        ? keys.passwords->verify(*p.users, creds->user, creds->password, now)
                        : p.users->verify(creds->user, creds->password);
    if (!ok) return challenge("bad_credential", "wrong user name or password");
    return allow(visitor_credential::basic, "user " + creds->user);  // a listed (safe) name
}

// Why a candidate token failed, ranked: the most telling reason is reported.
struct token_failure {
    int rank = 0;
    std::string code, message;
};

void note(token_failure& worst, int rank, std::string code, std::string message) {
    if (rank > worst.rank) worst = {rank, std::move(code), std::move(message)};
}

// A verified grant for this tenant and name, or the reason it is not.
std::optional<visitor_grant> admit(const visitor_request& r, const visitor_keys& keys,
                                   std::string_view token,
                                   std::chrono::system_clock::time_point now,
                                   token_failure& worst) {
    auto grant = verify_visitor_token(*keys.tokens, token, now);
    if (grant && keys.revoked && !grant->id.empty() && keys.revoked->revoked(grant->id)) {
        note(worst, 3, "token_revoked",
             "the visitor token was revoked by the relay's operator; ask for a new one");
        return std::nullopt;
    }
    if (!grant) {
        switch (grant.error().code) {
            case token_errc::expired:
                note(worst, 3, "expired", grant.error().message);
                break;
            case token_errc::wrong_type:
                note(worst, 2, "wrong_token_type", grant.error().message);
                break;
            default:
                note(worst, 1, "bad_credential",
                     "the visitor token is not valid: " + grant.error().message);
        }
        return std::nullopt;
    }
    if (!grants(*grant, r.tenant, r.name)) {
        note(worst, 4, "wrong_service",
             fmt::format("the visitor token does not grant access to {}", realm(r)));
        return std::nullopt;
    }
    return std::move(*grant);
}

visitor_decision bearer_challenge(const visitor_request& r, const token_failure& why) {
    const bool forbidden = why.code == "wrong_service";
    auto d = why.rank == 0
                 ? refuse(visitor_verdict::unauthorized, 401, "no_credential",
                          fmt::format("{} needs a visitor token: send Authorization: Bearer "
                                      "<token>, or open {}?token=<token> once in a browser",
                                      realm(r), login_path))
                 : refuse(forbidden ? visitor_verdict::forbidden : visitor_verdict::unauthorized,
                          forbidden ? 403 : 401, why.code, why.message);
    std::string header = fmt::format("Bearer realm=\"{}\"", realm(r));
    if (why.rank > 0)
        header +=
            fmt::format(", error=\"{}\", error_description=\"{}\"",
                        forbidden ? "insufficient_scope" : "invalid_token", quotable(why.message));
    d.headers.push_back({"WWW-Authenticate", std::move(header)});
    return d;
}

visitor_decision check_token(const visitor_request& r, const visitor_keys& keys,
                             std::chrono::system_clock::time_point now) {
    if (!keys.tokens)
        return refuse(visitor_verdict::unavailable, 503, "not_configured",
                      fmt::format("{} asks for visitor tokens but the relay has no visitor secret",
                                  realm(r)));
    const auto q = r.target.find('?');
    const auto path = r.target.substr(0, q);
    token_failure worst;

    if (path == logout_path) {
        auto d = refuse(visitor_verdict::logout, 303, "logout", "signed out");
        d.headers = {
            {"Location", "/"},
            {"Set-Cookie", fmt::format("{}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax{}",
                                       visitor_cookie_name(r.tls), r.tls ? "; Secure" : "")},
            {"Cache-Control", "no-store"}};
        return d;
    }
    if (path == login_path) {
        if (r.method != "GET" && r.method != "HEAD") {
            auto d = refuse(visitor_verdict::bad_request, 405, "method_not_allowed",
                            fmt::format("{} takes GET", login_path));
            d.headers.push_back({"Allow", "GET, HEAD"});
            return d;
        }
        if (!r.host_routed)
            return refuse(visitor_verdict::forbidden, 403, "login_needs_host_routing",
                          "the login sets a cookie on the service's own host, which path "
                          "routing (/t/tenant/name/) does not give it: open the host-routed URL "
                          "(https://name--tenant.domain/), or send Authorization: Bearer <token>");
        auto token = login_token(r.target);
        if (!token)
            return refuse(
                visitor_verdict::bad_request, 400, "bad_login_request",
                fmt::format("write {}?token=<visitor token> (one token parameter)", login_path));
        auto grant = admit(r, keys, *token, now, worst);
        if (!grant) return bearer_challenge(r, worst);
        auto d = refuse(visitor_verdict::login, 303, "login", "signed in; continue at /");
        d.headers = login_response_headers(*token, grant->expires, r.tls, now);
        d.credential = visitor_credential::bearer;
        d.principal = "token " + grant->id;
        return d;
    }

    auto auth = authorization_fields(r.fields);
    if (auth.size() > 1)
        return refuse(visitor_verdict::bad_request, 400, "ambiguous_credential",
                      "the request has more than one Authorization field");
    if (!auth.empty())
        if (auto bearer = parse_bearer_authorization(auth.front()->value))
            if (auto grant = admit(r, keys, *bearer, now, worst))
                return allow(visitor_credential::bearer, "token " + grant->id);
    for (const auto& cookie : visitor_cookies(r.fields, r.tls))
        if (auto grant = admit(r, keys, cookie, now, worst))
            return allow(visitor_credential::cookie, "token " + grant->id);
    return bearer_challenge(r, worst);
}

// Every cookie pair of a Cookie field, trimmed.
std::vector<std::string_view> cookie_pairs(std::string_view value) {
    std::vector<std::string_view> out;
    while (!value.empty()) {
        const auto semi = value.find(';');
        auto pair = trim(value.substr(0, semi));
        if (!pair.empty()) out.push_back(pair);
        if (semi == std::string_view::npos) break;
        value.remove_prefix(semi + 1);
    }
    return out;
}

std::string_view cookie_name_of(std::string_view pair) {
    return trim(pair.substr(0, pair.find('=')));
}

}  // namespace

std::string access_policy::describe() const {
    switch (mode) {
        case access_mode::basic:
            return fmt::format("basic ({} users)", users ? users->entries().size() : 0);
        case access_mode::ip:
            return fmt::format("ip ({})", allow_ips.to_string());
        default:
            return std::string(to_string(mode));
    }
}

bool operator==(const access_policy& a, const access_policy& b) {
    const bool same_users = (!a.users && !b.users) || (a.users && b.users && *a.users == *b.users);
    return a.mode == b.mode && a.allow_ips == b.allow_ips && same_users;
}

core::result<void> validate(const access_policy& p) {
    if (p.mode == access_mode::basic && (!p.users || p.users->entries().empty()))
        return core::fail(core::errc::invalid_argument,
                          "access basic needs users: an htpasswd file (user:hash lines)");
    if (p.mode == access_mode::ip && p.allow_ips.empty())
        return core::fail(core::errc::invalid_argument,
                          "access ip needs networks to allow, e.g. 10.0.0.0/8");
    return {};
}

visitor_decision check_visitor(const visitor_request& request, const access_policy& policy,
                               const visitor_keys& keys,
                               std::chrono::system_clock::time_point now) {
    switch (policy.mode) {
        case access_mode::public_:
            return allow(visitor_credential::none, "public");
        case access_mode::ip:
            return check_ip(request, policy);
        case access_mode::basic:
            return check_basic(request, policy, keys, now);
        case access_mode::token:
            return check_token(request, keys, now);
    }
    return refuse(visitor_verdict::unavailable, 503, "not_configured", "unknown access mode");
}

void strip_visitor_credentials(std::vector<http_field>& fields, const access_policy& policy,
                               const visitor_decision& decision) {
    const bool strip_bearer = decision.credential == visitor_credential::bearer;
    const bool strip_basic = policy.mode == access_mode::basic;
    std::vector<http_field> kept;
    kept.reserve(fields.size());
    for (auto& f : fields) {
        if (iequals(f.name, "Authorization")) {
            if (strip_bearer && parse_bearer_authorization(f.value)) continue;
            if (strip_basic && iequals(trim(f.value).substr(0, 6), "basic ")) continue;
        }
        if (iequals(f.name, "Cookie")) {
            std::string rebuilt;
            for (auto pair : cookie_pairs(f.value)) {
                const auto name = cookie_name_of(pair);
                if (name == visitor_cookie_name(true) || name == visitor_cookie_name(false))
                    continue;
                if (!rebuilt.empty()) rebuilt += "; ";
                rebuilt += pair;
            }
            if (rebuilt.empty()) continue;
            f.value = std::move(rebuilt);
        }
        kept.push_back(std::move(f));
    }
    fields = std::move(kept);
}

std::string render_visitor_response(const visitor_decision& d) {
    const int status = d.status == 0 ? 403 : d.status;
    std::string_view phrase;
    switch (status) {
        case 303:
            phrase = "See Other";
            break;
        case 400:
            phrase = "Bad Request";
            break;
        case 401:
            phrase = "Unauthorized";
            break;
        case 405:
            phrase = "Method Not Allowed";
            break;
        case 503:
            phrase = "Service Unavailable";
            break;
        default:
            phrase = "Forbidden";
            break;
    }
    const std::string body = nlohmann::json{{"error", d.code}, {"message", d.message}}.dump(
                                 -1, ' ', false, nlohmann::json::error_handler_t::replace) +
                             "\n";
    std::string out = fmt::format("HTTP/1.1 {} {}\r\n", status, phrase);
    bool cache_control = false;
    for (const auto& h : d.headers) {
        cache_control = cache_control || iequals(h.name, "Cache-Control");
        out += fmt::format("{}: {}\r\n", h.name, h.value);
    }
    if (!cache_control) out += "Cache-Control: no-store\r\n";
    out += fmt::format(
        "Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.size(), body);
    return out;
}

std::string_view visitor_cookie_name(bool tls) noexcept {
    return tls ? "__Host-tunnel_visitor" : "tunnel_visitor";
}

std::vector<http_field> login_response_headers(std::string_view token,
                                               std::chrono::system_clock::time_point expires,
                                               bool tls,
                                               std::chrono::system_clock::time_point now) {
    const auto max_age = std::max<long long>(
        0, std::chrono::duration_cast<std::chrono::seconds>(expires - now).count());
    return {{"Location", "/"},
            {"Set-Cookie",
             fmt::format("{}={}; Max-Age={}; Path=/; HttpOnly; SameSite=Lax{}",
                         visitor_cookie_name(tls), token, max_age, tls ? "; Secure" : "")},
            {"Cache-Control", "no-store"},
            {"Referrer-Policy", "no-referrer"}};
}

std::vector<std::string> visitor_cookies(std::span<const http_field> fields, bool tls) {
    std::vector<std::string> out;
    const auto wanted = visitor_cookie_name(tls);
    for (const auto& f : fields) {
        if (!iequals(f.name, "Cookie")) continue;
        for (auto pair : cookie_pairs(f.value)) {
            if (out.size() >= max_cookies_checked) return out;
            const auto eq = pair.find('=');
            if (eq == std::string_view::npos || cookie_name_of(pair) != wanted) continue;
            auto value = trim(pair.substr(eq + 1));
            if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
                value = value.substr(1, value.size() - 2);
            if (jwt_shaped(value)) out.emplace_back(value);
        }
    }
    return out;
}

std::optional<std::string> login_token(std::string_view target) {
    const auto q = target.find('?');
    if (q == std::string_view::npos || target.substr(0, q) != login_path) return std::nullopt;
    auto query = target.substr(q + 1);
    std::optional<std::string> token;
    while (!query.empty()) {
        const auto amp = query.find('&');
        const auto param = query.substr(0, amp);
        if (param.substr(0, 6) == "token=") {
            if (token || !jwt_shaped(param.substr(6))) return std::nullopt;
            token = std::string(param.substr(6));
        }
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
    return token;
}

std::optional<basic_credentials> parse_basic_authorization(std::string_view value) {
    value = trim(value);
    if (value.size() < 6 || !iequals(value.substr(0, 6), "basic ")) return std::nullopt;
    auto encoded = trim(value.substr(6));
    if (encoded.empty() || encoded.size() > 4096) return std::nullopt;
    auto decoded = core::base64_decode(encoded);
    if (!decoded) return std::nullopt;
    const auto colon = decoded->find(':');
    if (colon == std::string::npos || colon == 0) return std::nullopt;
    basic_credentials c{decoded->substr(0, colon), decoded->substr(colon + 1)};
    if (c.user.find('\0') != std::string::npos) return std::nullopt;
    return c;
}

std::optional<std::string> parse_bearer_authorization(std::string_view value) {
    value = trim(value);
    if (value.size() < 7 || !iequals(value.substr(0, 7), "bearer ")) return std::nullopt;
    auto token = trim(value.substr(7));
    if (!jwt_shaped(token)) return std::nullopt;
    return std::string(token);
}

}  // namespace tunnel::relay
