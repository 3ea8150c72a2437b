#include "relay/token_revocation.hpp"

#include <algorithm>
#include <chrono>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "core/log_text.hpp"
#include "core/utc_time.hpp"
#include "relay/relay_state.hpp"

namespace tunnel::relay {

namespace {

using observe::admin_request;
using observe::admin_response;
using sys = std::chrono::system_clock;

// How long a revocation is kept when neither the request nor an attached
// tunnel says when the token expires: the longest `tunnel token` mints.
constexpr auto default_keep = std::chrono::hours(24 * 366);
// The latest expiry a request may give (ten years from now).
constexpr auto max_keep = std::chrono::hours(24 * 3660);

admin_response json_response(const nlohmann::json& j, int status = 200) {
    return admin_response::json(
        j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", status);
}

admin_response revoke(relay_state& st, const admin_request& req) {
    nlohmann::json body;
    try {
        body = nlohmann::json::parse(req.body);
    } catch (const nlohmann::json::exception&) {
        return admin_response::error(
            400, "bad_request",
            "the body must be JSON: {\"jti\": \"<the token's jti>\"} (optional: \"exp\": unix "
            "seconds, \"reason\": text)");
    }
    if (!body.is_object() || !body.contains("jti") || !body["jti"].is_string())
        return admin_response::error(400, "bad_request",
                                     "the body needs \"jti\": the token's ID, as a string");
    const std::string jti = body["jti"].get<std::string>();
    if (auto why = check_jti(jti); !why.empty())
        return admin_response::error(400, "bad_jti", "jti " + why);
    std::string reason;
    if (body.contains("reason")) {
        if (!body["reason"].is_string())
            return admin_response::error(400, "bad_request", "\"reason\" must be a string");
        reason = core::log_text(body["reason"].get<std::string>(), 200);
    }
    const auto now = sys::now();
    // Until when: the request's exp, else the latest expiry of a tunnel
    // attached with it, else default_keep.
    std::optional<sys::time_point> expires;
    if (body.contains("exp")) {
        const auto& e = body["exp"];
        if (!e.is_number_integer())
            return admin_response::error(400, "bad_request",
                                         "\"exp\" must be the token's expiry in unix seconds");
        const auto t = sys::time_point(std::chrono::seconds(e.get<long long>()));
        if (t <= now)
            return admin_response::error(
                400, "already_expired",
                "\"exp\" is in the past: that token is refused as expired already");
        if (t > now + max_keep)
            return admin_response::error(400, "bad_request", "\"exp\" is more than ten years away");
        expires = t;
    }
    unsigned attached = 0;
    const auto table = st.table();
    for (const auto& [id, ref] : table->tunnels)
        if (auto t = ref.tunnel.lock(); t && t->policy.id == jti) {
            ++attached;
            if (!body.contains("exp")) expires = std::max(expires.value_or(now), t->policy.expires);
        }
    revoked_token entry{jti, expires.value_or(now + default_keep), now};
    // Read before the add: a cluster's write to Redis starts with it.
    const std::string pending = st.revocations->pending_reason();
    auto added = st.revocations->add(entry);
    if (!added) {
        spdlog::error("revoking token {} failed: {}", core::log_text(jti, 64),
                      added.error().message);
        return admin_response::error(
            added.error().code == core::errc::resource_exhausted ? 507 : 500, "revoke_failed",
            added.error().message);
    }
    spdlog::warn("token {} revoked from {}{}; {} attached tunnel(s) using it closed",
                 core::log_text(jti, 64), req.peer, reason.empty() ? "" : " (" + reason + ")",
                 attached);
    (void)st.audit("token_revoked", {{"jti", core::log_text(jti, 64)},
                                     {"peer", req.peer},
                                     {"new", *added ? "true" : "false"},
                                     {"tunnels", std::to_string(attached)},
                                     {"expires", core::utc_iso8601(entry.expires)},
                                     {"reason", reason}});
    nlohmann::json answer{{"jti", jti},
                          {"revoked", true},
                          {"new", *added},
                          {"tunnels_closed", attached},
                          {"kept_until", core::utc_iso8601(entry.expires)}};
    if (!pending.empty()) {
        spdlog::warn("token {}: {}", core::log_text(jti, 64), pending);
        answer["warning"] = pending;
    }
    return json_response(answer);
}

admin_response list_revoked(relay_state& st) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& e : st.revocations->list())
        list.push_back({{"jti", e.jti},
                        {"revoked_at", core::utc_iso8601(e.revoked_at)},
                        {"kept_until", core::utc_iso8601(e.expires)}});
    return json_response({{"revoked", list}});
}

}  // namespace

bool is_revoked(const relay_state& relay, const std::string& jti) {
    return !jti.empty() && relay.revocations && relay.revocations->revoked(jti);
}

void close_revoked(relay_state& relay, tunnel_entry& t) {
    if (t.closing || !t.close) return;
    spdlog::info("tunnel {} ({}) from {} closed: its token (jti {}) was revoked", t.id,
                 t.policy.tenant, t.peer, core::log_text(t.policy.id, 64));
    (void)relay.audit("tunnel_revoked", {{"tenant", t.policy.tenant},
                                         {"peer", t.peer},
                                         {"tunnel", std::to_string(t.id)},
                                         {"jti", core::log_text(t.policy.id, 64)}});
    // Nobody may re-attach with this token: its names are released now.
    t.release_lease = true;
    t.close("token revoked by the relay's operator: get a new token");
}

void watch_revocations(const std::shared_ptr<relay_state>& state) {
    std::weak_ptr<relay_state> weak = state;
    state->revocations->subscribe([weak](const revoked_token& e) {
        auto st = weak.lock();
        if (!st) return;
        for (auto& w : st->workers)
            asio::post(w->io, [weak, jti = e.jti, index = w->index] {
                auto relay = weak.lock();
                if (!relay) return;
                // The worker's own list: copied, since closing may change it.
                std::vector<std::shared_ptr<tunnel_entry>> hit;
                for (const auto& [id, t] : relay->worker(index).tunnels)
                    if (t->policy.id == jti) hit.push_back(t);
                for (const auto& t : hit) close_revoked(*relay, *t);
            });
    });
}

std::vector<observe::admin_endpoint> revocation_endpoints(
    const std::shared_ptr<relay_state>& state) {
    std::weak_ptr<relay_state> weak = state;
    std::vector<observe::admin_endpoint> table;
    table.push_back({"/api/v1/tokens/revoke",
                     "POST {\"jti\": ID[, \"exp\": unix seconds][, \"reason\": text]}: revoke a "
                     "tunnel or visitor token; tunnels using it close at once (JSON)",
                     [weak](const admin_request& req) {
                         auto st = weak.lock();
                         if (!st || !st->revocations)
                             return admin_response::error(503, "stopped", "the relay has stopped");
                         return revoke(*st, req);
                     },
                     true});
    table.push_back({"/api/v1/tokens/revoked",
                     "revoked token IDs and until when they are kept (JSON)",
                     [weak](const admin_request&) {
                         auto st = weak.lock();
                         if (!st || !st->revocations)
                             return admin_response::error(503, "stopped", "the relay has stopped");
                         return list_revoked(*st);
                     }});
    return table;
}

}  // namespace tunnel::relay
