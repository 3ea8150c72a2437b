// The share API and the share check of the request path (share_api.hpp).
#include "relay/share_api.hpp"

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "core/log_text.hpp"
#include "core/utc_time.hpp"
#include "relay/connection_gate.hpp"
#include "relay/public_connection.hpp"
#include "relay/relay_state.hpp"
#include "relay/share_store.hpp"
#include "relay/visitor_token.hpp"

namespace tunnel::relay {

namespace {

using json = nlohmann::json;
using sys = std::chrono::system_clock;
using steady = std::chrono::steady_clock;

constexpr std::string_view api_path = "/v1/shares";

std::string_view path_only(std::string_view target) {
    return target.substr(0, target.find('?'));
}

std::string json_response(int status, const json& body) {
    std::string text = body.dump(-1, ' ', false, json::error_handler_t::replace);
    text += '\n';
    return fmt::format(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n"
        "Cache-Control: no-store\r\nConnection: close\r\n\r\n{}",
        status,
        status == 200   ? "OK"
        : status == 201 ? "Created"
                        : reason_phrase(status),
        text.size(), text);
}

std::string source_of(const std::string& peer_ip) {
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(peer_ip, ec);
    return ec ? peer_ip : source_key(address);
}

// The token of the request's one `Authorization: Bearer` field.
std::optional<std::string> bearer_of(const http_head& head) {
    const std::string* found = nullptr;
    for (const auto& f : head.fields) {
        if (!iequals(f.name, "Authorization")) continue;
        if (found) return std::nullopt;  // two: ambiguous
        found = &f.value;
    }
    if (!found) return std::nullopt;
    return parse_bearer_authorization(*found);
}

// Who the bearer token says the caller is, as grantees (a tenant token:
// tenant:<sub>; a visitor token: audience:<aud> for each extra audience).
struct caller_identity {
    std::optional<tenant_policy> tenant;  // a verified tunnel token
    std::vector<share_grantee> grantees;
    std::string principal;  // for audit lines
};

caller_identity identify(relay_state& relay, std::string_view token, sys::time_point now) {
    caller_identity id;
    const auto live = relay.live();
    auto is_revoked = [&](const std::string& jti) {
        return !jti.empty() && relay.revocations && relay.revocations->revoked(jti);
    };
    if (auto policy = live->verifier.verify(token, now); policy && !is_revoked(policy->id)) {
        id.grantees.push_back({share_grantee::kind::tenant, policy->tenant});
        id.principal = "tenant:" + policy->tenant;
        id.tenant = std::move(*policy);
        return id;
    }
    if (live->visitor_tokens)
        if (auto grant = verify_visitor_token(*live->visitor_tokens, token, now);
            grant && !is_revoked(grant->id)) {
            for (const auto& a : grant->audiences)
                id.grantees.push_back({share_grantee::kind::audience, a});
            id.principal = "visitor token " + core::log_text(grant->id, 64);
        }
    return id;
}

// One API request, with what serving it needs.
struct api_call {
    relay_state& relay;
    public_conn& conn;
    const http_head& head;
    std::string peer;
    std::string source;
};

void audit_refusal(api_call& c, const std::string& tenant, std::string_view action,
                   std::string_view reason, const std::string& message) {
    c.relay.audit("share_refused", {{"tenant", tenant},
                                    {"action", std::string(action)},
                                    {"reason", std::string(reason)},
                                    {"message", core::log_text(message, 200)},
                                    {"peer", c.peer}});
}

asio::awaitable<bool> answer(api_call& c, int status, const json& body) {
    c.conn.last_status = status;
    std::string text = json_response(status, body);
    co_await send(c.conn, std::move(text));
    c.conn.close();
    co_return false;
}

// (string_view arguments: no temporaries with destructors in a co_await's
// arguments, ARCHITECTURE §3.)
asio::awaitable<bool> fail(api_call& c, int status, std::string_view code,
                           std::string_view message) {
    const json body{{"error", code}, {"message", message}};
    co_return co_await answer(c, status, body);
}

// The tenant of the caller's tunnel token, or the 401 it was answered.
asio::awaitable<std::optional<tenant_policy>> authenticate(api_call& c) {
    auto token = bearer_of(c.head);
    std::string message;
    std::string code = "no_credential";
    if (!token) {
        message =
            "the share API needs your tenant's tunnel token (the one tunnel connect uses): send "
            "Authorization: Bearer <token>, or use tunnel share --token-file FILE";
    } else {
        auto policy = c.relay.live()->verifier.verify(*token, sys::now());
        const bool revoked = policy && !policy->id.empty() && c.relay.revocations &&
                             c.relay.revocations->revoked(policy->id);
        if (policy && !revoked) co_return std::move(*policy);
        code = revoked ? std::string("token_revoked") : std::string(to_string(policy.error().code));
        message = revoked ? std::string("the tunnel token was revoked by the relay's operator")
                          : "the tunnel token was refused: " + policy.error().message;
        if (c.relay.visitor_failures.record_refusal(c.source))
            spdlog::warn("share API: {} wrong tokens from {}; answered 429 for a while",
                         c.relay.config.limits.visitor_failures_per_ip, c.source);
    }
    c.conn.last_status = 401;
    std::string text = error_response(401, code, message);
    co_await send(c.conn, std::move(text));
    c.conn.close();
    co_return std::nullopt;
}

// The body of a request with Content-Length (at most `max` bytes), or
// nullopt once the error was answered.
asio::awaitable<std::optional<std::string>> read_body(api_call& c, std::size_t max) {
    if (c.head.chunked) {
        (void)co_await fail(c, 411, "length_required",
                            "send the JSON body with a Content-Length (not chunked)");
        co_return std::nullopt;
    }
    const std::uint64_t length = c.head.content_length.value_or(0);
    if (length > max) {
        const std::string message =
            fmt::format("the body is {} bytes; a share request is at most {}", length, max);
        (void)co_await fail(c, 413, "body_too_large", message);
        co_return std::nullopt;
    }
    const auto deadline = steady::now() + c.relay.live()->config.limits.header_read_timeout;
    while (c.conn.buffered().size() < length) {
        if (c.conn.in_eof || c.conn.closed) {
            c.conn.close();
            co_return std::nullopt;
        }
        if (!co_await c.conn.data_signal.wait(deadline)) {
            (void)co_await fail(c, 408, "body_timeout",
                                "the request body did not arrive in time; send it with the head");
            co_return std::nullopt;
        }
    }
    std::string body(c.conn.buffered().substr(0, length));
    c.conn.consume(length);
    co_return body;
}

asio::awaitable<bool> create_share(api_call& c, const tenant_policy& owner) {
    auto& store = *c.relay.shares;
    auto body = co_await read_body(c, store.config().limits.max_body_bytes);
    if (!body) co_return false;
    const auto now = sys::now();
    auto request = parse_share_request(*body, owner, store.config().limits, now);
    if (!request) {
        audit_refusal(c, owner.tenant, "grant", "bad_request", request.error().message);
        co_return co_await fail(c, 400, "bad_request", request.error().message);
    }
    auto grant = store.grant(*request, owner.tenant, now);
    if (!grant) {
        const bool full = grant.error().code == core::errc::resource_exhausted;
        audit_refusal(c, owner.tenant, "grant", full ? "limit" : "not_saved",
                      grant.error().message);
        if (!full) spdlog::error("share API: {}", grant.error().message);
        const int status = full ? 429 : 503;
        const std::string_view code = full ? "share_limit" : "not_saved";
        co_return co_await fail(c, status, code, grant.error().message);
    }
    c.relay.audit("share_granted", {{"id", grant->id},
                                    {"tenant", grant->tenant},
                                    {"name", grant->name},
                                    {"to", grant->grantee.to_string()},
                                    {"role", std::string(to_string(grant->role))},
                                    {"expires", core::utc_iso8601(grant->expires_at)},
                                    {"by", grant->created_by},
                                    {"peer", c.peer}});
    spdlog::info("share {}: {} granted {} on {} to {} until {}", grant->id, grant->tenant,
                 to_string(grant->role), grant->name, grant->grantee.to_string(),
                 core::utc_iso8601(grant->expires_at));
    const json created = to_json(*grant);
    co_return co_await answer(c, 201, created);
}

asio::awaitable<bool> list_shares(api_call& c, const tenant_policy& owner) {
    json list = json::array();
    for (const auto& g : c.relay.shares->list(owner.tenant, sys::now())) list.push_back(to_json(g));
    const json body{{"tenant", owner.tenant}, {"shares", std::move(list)}};
    co_return co_await answer(c, 200, body);
}

asio::awaitable<bool> revoke_share(api_call& c, const tenant_policy& owner, std::string_view id) {
    if (!valid_share_id(id)) {
        std::string message = fmt::format(
            "\"{}\" is not a share id (shr_ and 20 hex digits); tunnel share list shows them",
            core::log_text(id, 40));
        audit_refusal(c, owner.tenant, "revoke", "bad_request", message);
        co_return co_await fail(c, 400, "bad_request", message);
    }
    auto revoked = c.relay.shares->revoke(owner.tenant, std::string(id), sys::now());
    if (!revoked) {
        const bool missing = revoked.error().code == core::errc::not_found;
        audit_refusal(c, owner.tenant, "revoke", missing ? "not_found" : "not_saved",
                      revoked.error().message);
        const int status = missing ? 404 : 503;
        const std::string_view code = missing ? "not_found" : "not_saved";
        co_return co_await fail(c, status, code, revoked.error().message);
    }
    c.relay.audit("share_revoked", {{"id", revoked->id},
                                    {"tenant", revoked->tenant},
                                    {"name", revoked->name},
                                    {"to", revoked->grantee.to_string()},
                                    {"role", std::string(to_string(revoked->role))},
                                    {"by", "tenant:" + owner.tenant},
                                    {"peer", c.peer}});
    spdlog::info("share {}: revoked by {}", revoked->id, owner.tenant);
    const json body{{"revoked", to_json(*revoked)}};
    co_return co_await answer(c, 200, body);
}

// tenant=T&name=N (labels only, so no percent-decoding is needed).
std::optional<std::pair<std::string, std::string>> stats_query(std::string_view target) {
    const auto q = target.find('?');
    if (q == std::string_view::npos) return std::nullopt;
    std::string tenant, name;
    std::string_view rest = target.substr(q + 1);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const auto pair = rest.substr(0, amp);
        const auto eq = pair.find('=');
        if (eq != std::string_view::npos) {
            const auto key = pair.substr(0, eq);
            const auto value = pair.substr(eq + 1);
            if (key == "tenant") tenant = value;
            if (key == "name") name = value;
        }
        if (amp == std::string_view::npos) break;
        rest.remove_prefix(amp + 1);
    }
    if (!valid_label(tenant) || !valid_label(name)) return std::nullopt;
    return std::pair{tenant, name};
}

asio::awaitable<bool> share_stats(api_call& c) {
    auto query = stats_query(c.head.target);
    if (!query)
        co_return co_await fail(c, 400, "bad_request",
                                "write /v1/shares/stats?tenant=<tenant>&name=<name> (lower-case "
                                "names: a-z, 0-9, '-')");
    const auto& [tenant, name] = *query;
    const auto now = sys::now();
    auto token = bearer_of(c.head);
    caller_identity who;
    if (token) who = identify(c.relay, *token, now);
    if (who.grantees.empty()) {
        if (token && c.relay.visitor_failures.record_refusal(c.source))
            spdlog::warn("share API: too many wrong tokens from {}", c.source);
        co_return co_await fail(c, 401, "no_credential",
                                "send Authorization: Bearer <token>: the owner's tunnel token, a "
                                "granted tenant's, or a visitor token of a granted audience");
    }
    const bool owner = who.tenant && who.tenant->tenant == tenant;
    auto snapshot = c.relay.shares->snapshot();
    const share_entry* grant =
        owner ? nullptr
              : share_store::find(*snapshot, tenant, name, share_role::view, who.grantees, now);
    if (!owner && !grant) {
        std::string message = fmt::format(
            "{} has no live view grant on {}/{}; ask its owner (tunnel share grant {} --to {} "
            "--role view)",
            who.principal, tenant, name, name, who.grantees.front().to_string());
        audit_refusal(c, tenant, "stats", "no_grant", message);
        co_return co_await fail(c, 403, "no_grant", message);
    }
    if (grant) {
        std::uint64_t uses = 0;
        if (c.relay.shares->note_use(*grant, steady::now(), uses))
            c.relay.audit("share_used", {{"id", grant->grant.id},
                                         {"tenant", tenant},
                                         {"name", name},
                                         {"to", grant->grant.grantee.to_string()},
                                         {"role", "view"},
                                         {"uses", std::to_string(uses)},
                                         {"peer", c.peer}});
    }
    json body{{"tenant", tenant}, {"name", name}, {"online", false}};
    auto table = c.relay.table();
    if (auto it = table->routes.find({tenant, name}); it != table->routes.end()) {
        body["access"] = it->second.access.empty() ? "public" : it->second.access;
        if (auto t = it->second.tunnel.lock()) {
            // The counters are those of the tunnel publishing the name.
            body["online"] = !t->closing.load();
            body["attached_at"] = core::utc_iso8601(t->attached_at);
            body["tunnel"] = {{"requests", t->requests.load()},
                              {"bytes_to_origin", t->bytes_to_origin.load()},
                              {"bytes_from_origin", t->bytes_from_origin.load()},
                              {"active_streams", t->active_streams.load()}};
        }
    }
    co_return co_await answer(c, 200, body);
}

}  // namespace

bool is_share_api(const relay_config& config, const http_head& head) {
    const auto path = path_only(head.target);
    if (path != api_path && !path.starts_with("/v1/shares/")) return false;
    if (!routes_by_host(routing_of(config))) return true;
    const std::string* host = head.find("Host");
    // A name's own host: the request is the name's.
    const auto named = route_by_host(host ? *host : std::string_view{}, config.domain, head.target);
    return !(named && named->has_value());
}

asio::awaitable<bool> serve_share_api(std::shared_ptr<relay_state> relay,
                                      std::shared_ptr<public_conn> conn, const http_head& head) {
    api_call c{*relay, *conn, head, core::log_text(conn->peer_ip, 64), source_of(conn->peer_ip)};
    if (!relay->shares) co_return co_await fail(c, 404, "no_route", "this relay does not share");
    if (const auto v = relay->visitor_failures.check(c.source); v.throttled) {
        limit_hit(*relay, "visitor_failures");
        c.conn.last_status = 429;
        const std::string message = fmt::format(
            "too many wrong tokens from this address; retry after {} s", v.retry_after_seconds());
        std::string text =
            error_response(429, "too_many_failures", message, v.retry_after_seconds());
        co_await send(*conn, std::move(text));
        conn->close();
        co_return false;
    }
    const auto path = path_only(head.target);
    if (path == "/v1/shares/stats") {
        if (head.method != "GET") co_return co_await fail(c, 405, "method_not_allowed", "use GET");
        co_return co_await share_stats(c);
    }
    const bool collection = path == api_path;
    const std::string_view id = collection ? std::string_view{} : path.substr(api_path.size() + 1);
    const bool allowed =
        collection ? (head.method == "GET" || head.method == "POST") : head.method == "DELETE";
    if (!allowed) {
        const std::string_view message =
            collection ? "use GET /v1/shares (list) or POST /v1/shares (grant)"
                       : "use DELETE /v1/shares/<id> to revoke a grant";
        co_return co_await fail(c, 405, "method_not_allowed", message);
    }
    auto owner = co_await authenticate(c);
    if (!owner) co_return false;
    if (!collection) co_return co_await revoke_share(c, *owner, id);
    if (head.method == "POST") co_return co_await create_share(c, *owner);
    co_return co_await list_shares(c, *owner);
}

std::optional<visitor_decision> admit_by_share(relay_state& relay, const public_conn& conn,
                                               const public_route& route, const http_head& head) {
    if (!relay.shares) return std::nullopt;
    const auto now = sys::now();
    auto snapshot = relay.shares->snapshot();
    // Unshared names cost one map lookup: no token is verified for them.
    if (!share_store::any(*snapshot, route.tenant, route.name, share_role::invoke, now))
        return std::nullopt;
    auto token = bearer_of(head);
    if (!token) return std::nullopt;
    auto who = identify(relay, *token, now);
    if (who.grantees.empty()) return std::nullopt;
    const auto* grant = share_store::find(*snapshot, route.tenant, route.name, share_role::invoke,
                                          who.grantees, now);
    if (!grant) return std::nullopt;
    std::uint64_t uses = 0;
    if (relay.shares->note_use(*grant, steady::now(), uses))
        relay.audit("share_used", {{"id", grant->grant.id},
                                   {"tenant", route.tenant},
                                   {"name", route.name},
                                   {"to", grant->grant.grantee.to_string()},
                                   {"role", "invoke"},
                                   {"uses", std::to_string(uses)},
                                   {"peer", core::log_text(conn.peer_ip, 64)}});
    visitor_decision d;
    d.credential = visitor_credential::bearer;  // stripped before the origin
    d.principal = fmt::format("share {} ({})", grant->grant.id, grant->grant.grantee.to_string());
    return d;
}

}  // namespace tunnel::relay
