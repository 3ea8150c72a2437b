#include "relay/proxy_exchange.hpp"

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/spawn.hpp"
#include "core/wake_signal.hpp"
#include "relay/admission.hpp"
#include "relay/body_rate.hpp"
#include "relay/cluster_hop.hpp"
#include "relay/cluster_routes.hpp"
#include "relay/exchange_accounting.hpp"
#include "relay/exchange_outcome.hpp"
#include "relay/exchange_pumps.hpp"
#include "relay/hop_exchange.hpp"
#include "relay/proxy_headers.hpp"
#include "relay/public_connection.hpp"
#include "relay/public_route.hpp"
#include "relay/relay_state.hpp"
#include "relay/share_api.hpp"
#include "relay/visitor_access.hpp"
#include "relay/visitor_gate.hpp"

namespace tunnel::relay {

namespace {

using steady = std::chrono::steady_clock;
using error_code = boost::system::error_code;

constexpr auto channel_open_timeout = std::chrono::seconds(10);

// Writes `text` to the channel as the peer's window allows. False when the
// channel closed or the deadline passed.
asio::awaitable<bool> write_channel(ssh::server_channel& ch, std::string_view text,
                                    steady::time_point deadline) {
    std::size_t sent = 0;
    while (sent < text.size()) {
        auto w = ch.write_some(text.substr(sent));
        if (!w) co_return false;
        sent += *w;
        if (sent < text.size() && !co_await ch.wait_writable(deadline)) co_return false;
    }
    co_return true;
}

// 421 to a request on a hop connection for another route than the one its
// preamble named (public_conn::hop): a sending relay never does that (each
// request comes with its own preamble).
asio::awaitable<void> send_misdirected(relay_state& relay, public_conn& conn) {
    relay.metrics.bad_requests.with({}).inc();
    co_await send_error(conn, 421, "misdirected",
                        fmt::format("this request came through relay {} for {}/{} only; a "
                                    "request for another name needs its own preamble",
                                    conn.hop->node, conn.hop->tenant, conn.hop->name));
}

}  // namespace

asio::awaitable<bool> proxy_exchange(std::shared_ptr<relay_state> relay,
                                     std::shared_ptr<public_conn> conn, http_tracker request,
                                     http_head head, std::unique_ptr<request_trace> trace) {
    const auto executor = co_await asio::this_coro::executor;
    const auto start = steady::now();
    const auto live = relay->live();  // this request's settings (a reload: the next one's)
    const relay_config& cfg = live->config;
    conn->last_status = 0;
    request_record record{relay, conn, start, "none", "none", 0, 0, std::move(trace)};
    request_trace* const traced = record.trace.get();
    if (traced) traced->admission_start = start;
    if (const auto a = check_stopping(relay->stopping); !a.admitted()) {
        co_await send_refusal(*relay, *conn, a);
        co_return false;
    }
    if (const auto a = check_framing(head); !a.admitted()) {
        co_await send_refusal(*relay, *conn, a);
        co_return false;
    }
    // Over the proxy hop (cluster_hop.hpp) a connection is bound to one
    // route: the share API, and any other route, are not its to call.
    if (conn->hop && is_share_api(cfg, head)) {
        co_await send_misdirected(*relay, *conn);
        co_return false;
    }
    // The share API (share_api.hpp) is the relay's, not a name's.
    if (is_share_api(cfg, head)) co_return co_await serve_share_api(relay, conn, head);
    const std::string* host = head.find("Host");
    auto route =
        route_request(host ? *host : std::string_view{}, head.target, cfg.domain, routing_of(cfg));
    if (const auto a = check_route(route); !a.admitted()) {
        co_await send_refusal(*relay, *conn, a);
        co_return false;
    }
    if (conn->hop && (route->tenant != conn->hop->tenant || route->name != conn->hop->name)) {
        co_await send_misdirected(*relay, *conn);
        co_return false;
    }
    // No tunnel of this relay publishes it and another relay of the cluster
    // holds it attached: this request is proxied there (hop_exchange.hpp);
    // the next one on the connection is routed afresh. Never from a
    // connection that came over a hop (no second hop, no loops).
    if (relay->cluster && !conn->hop && !relay->route(conn->worker, route->tenant, route->name)) {
        if (auto owner = relay->cluster->owner(route->tenant, route->name)) {
            auto op = hop_to_owner(relay, conn, request, head, *route, std::move(*owner));
            const hop_result hopped = co_await std::move(op);
            if (hopped != hop_result::requeue) co_return hopped == hop_result::next;
            // The owner is gone and a lease holds the name: the request waits
            // for its tunnel again (serve_connection, hold_for_lease).
            conn->retry = std::make_unique<retried_request>(
                retried_request{std::move(request), std::move(head), std::move(record.trace)});
            co_return true;
        }
    }
    const std::string label = fmt::format("{}/{}", route->tenant, route->name);
    // The tunnel, when it is pinned to this worker (serve_connection handed
    // the connection here); one on another worker counts as offline.
    auto t = relay->find(conn->worker, route->tenant, route->name);
    // Per-tenant/route series only for a route a tunnel publishes: callers
    // naming made-up tenants or names must not fill the bounded label sets
    // (and push real tenants into "other"); theirs count under "none".
    if (t) {
        record.tenant = route->tenant;
        record.route = route->name;
    }
    const auto admitted = admit(*relay, *route, t.get(), std::chrono::system_clock::now());
    if (t && t->breaker) t->breaker_seen = t->breaker->state();
    if (!admitted.admitted()) {
        co_await send_refusal(*relay, *conn, admitted);
        co_return false;
    }
    // Who may call the name (visitor_access.hpp): before any channel opens.
    // A copy: the publisher may cancel the name while a password is checked.
    // The operator's visitors.names entry as of this request wins (a reload
    // applies to published names too), else what the name was published with.
    const auto access_it = t->access.find(route->name);
    const auto* configured = configured_access(cfg.visitors, route->tenant, route->name);
    const access_policy access = configured                     ? *configured
                                 : access_it != t->access.end() ? access_it->second
                                                                : access_policy{};
    const visitor_decision visitor = co_await gate_visitor(relay, *conn, *route, head, access);
    if (!visitor.allowed()) co_return false;
    if (traced) traced->admitted = steady::now();
    ++relay->in_flight;
    ++t->active_streams;
    ++t->requests;
    flight_guard guard{relay, t};
    auto ex =
        std::make_shared<exchange_state>(executor, std::move(request), *t->breaker, admitted.probe);
    ex->guard = &guard;
    ex->trace = traced;
    ex->start = start;
    ex->drop_service_worker_allowed = !route->by_host;
    response_outcome outcome;

    // The origin never sees the visitor's credential.
    http_head origin_head = head;
    strip_visitor_credentials(origin_head.fields, access, visitor);
    if (traced) set_trace_fields(origin_head, *traced);  // its parent: the tunnel hop
    const std::string text =
        request_for_origin(origin_head, route->target, forwarding{conn->peer_ip, conn->secure()});
    const auto idle = cfg.limits.idle_timeout;
    ex->upgrade = head.upgrade;
    if (ex->request.done()) ex->finish_body();
    const bool retryable = ex->body_done && !ex->upgrade && is_idempotent(head.method);
    ex->release_early = ex->body_done && !ex->upgrade;
    ex->pool_name = route->name;
    if (traced) traced->hop_start = steady::now();
    // A channel: an idle one from the tunnel's keep-alive pool, else a new
    // one. A pooled channel whose origin connection turns out closed is
    // swapped for a new one when the request can be sent again.
    for (int attempt = 0;; ++attempt) {
        conn->channel = attempt == 0 ? t->idle->take(route->name) : nullptr;
        ex->reused = conn->channel != nullptr;
        ex->may_retry = ex->reused && retryable;
        if (!conn->channel) {
            const std::uint32_t port = t->names.count(route->name) ? t->names[route->name] : 80;
            auto ch =
                co_await t->ssh->open_forwarded(route->name, port, conn->peer_ip, conn->peer_port,
                                                steady::now() + channel_open_timeout);
            if (!ch) {
                // The tunnel dropped before the request started (no byte of it
                // entered the tunnel), or as a pooled channel failed it (the
                // request may go again: idempotent, no body), while its lease
                // holds the name: the request waits for the tunnel to come
                // back, here or on another relay (serve_connection,
                // hold_for_lease).
                const bool dropped = t->closing || !t->ssh || t->ssh->closed();
                if (dropped && t->lease != 0 && (attempt == 0 || retryable) &&
                    cfg.queue.max_requests > 0 && conn->hop_requeues < max_hop_requeues &&
                    !relay->stopping) {
                    ++conn->hop_requeues;
                    relay->metrics.queued.with({"requeued"}).inc();
                    spdlog::debug(
                        "{}: its tunnel dropped before the request started; it waits "
                        "for the tunnel again",
                        label);
                    conn->retry = std::make_unique<retried_request>(retried_request{
                        std::move(ex->request), std::move(head), std::move(record.trace)});
                    co_return true;
                }
                co_await end_without_answer(*relay, *conn, *ex, exchange_end::origin_unreachable,
                                            label, ch.error().message, outcome);
                co_return false;
            }
            conn->channel = std::move(*ch);
        }
        // Marked started before its first byte enters the tunnel: a request
        // that waited for a leased name gives the name's turn to the next
        // one, and is never queued or sent again (unless idempotent, above).
        conn->turn.reset();
        // Over a hop, the sender learns it first: from now on it never sends
        // the request again.
        if (!co_await announce_start(*conn)) {
            conn->channel.reset();
            conn->close();
            co_return false;
        }
        if (traced) {
            traced->reused = ex->reused;
            traced->attempts = attempt + 1;
        }
        if (co_await write_channel(*conn->channel, text, steady::now() + idle)) {
            if (traced) traced->head_sent = steady::now();
            if (!ex->body_done || ex->upgrade) break;  // pump_request sends the rest
            outcome = co_await pump_response(relay, conn, ex, t, head, label);
            if (!outcome.retry) break;
            conn->channel.reset();
            continue;
        }
        conn->channel.reset();
        if (ex->may_retry) continue;
        // A kept-alive channel the origin was closing says nothing about it.
        const auto end =
            ex->reused ? exchange_end::origin_closed : exchange_end::origin_unreachable;
        co_await end_without_answer(*relay, *conn, *ex, end, label,
                                    "the tunnel closed while the request was sent", outcome);
        co_return false;
    }
    // Null when pump_response put the channel back already (channel_free).
    ssh::server_channel* chp = conn->channel.get();
    t->bytes_to_origin += text.size();

    if (ex->body_done && !ex->upgrade) {
        ex->pump_done = true;  // and pump_response ran in the loop above
    } else {
        core::spawn(executor, pump_request(relay, conn, ex), "relay request body pump");
        outcome = co_await pump_response(relay, conn, ex, t, head, label);
    }
    ex->response_over = true;
    bool keep =
        outcome.complete && outcome.keep_alive && !conn->upgraded && !conn->in_eof && ex->body_done;
    if (!ex->pump_done) {
        // The origin answered before the whole body was sent, the exchange
        // failed, or an upgraded connection ended: stop the pump. Waiting for
        // a 101 that did not come is the only case that keeps the connection.
        if (!ex->body_done || conn->upgraded) {
            keep = false;
            ex->abort = true;
            if (chp) chp->close();
        }
        conn->data_signal.notify();
        while (!ex->pump_done)
            (void)co_await ex->done_signal.wait(steady::now() + std::chrono::seconds(5));
    }
    t->bytes_to_origin += ex->bytes_up;
    record.bytes_in = ex->bytes_up + text.size();
    record.bytes_out = outcome.bytes;
    relay->metrics.bytes.with({t->policy.tenant, "to_origin"})
        .inc(static_cast<double>(ex->bytes_up + text.size()));
    relay->metrics.bytes.with({t->policy.tenant, "from_origin"})
        .inc(static_cast<double>(outcome.bytes));
    relay->metrics.breaker_open.with({t->policy.tenant, route->name})
        .set(t->breaker->state() == pool::breaker_state::closed ? 0 : 1);
    // Back to the pool when the origin keeps its connection and the exchange
    // ended cleanly, whatever the caller does next; else closed.
    const bool reusable = outcome.complete && outcome.origin_keep_alive && ex->body_done &&
                          !ex->upgrade && !conn->upgraded && !t->closing && !relay->stopping;
    if (reusable && conn->channel && channel_pool::usable(*conn->channel))
        t->idle->put(route->name, std::move(conn->channel));
    else
        conn->channel.reset();
    if (!outcome.complete && outcome.status == 0) spdlog::debug("{}: request ended early", label);
    co_return keep;
}

}  // namespace tunnel::relay
