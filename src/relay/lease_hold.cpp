#include "relay/lease_hold.hpp"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "relay/cluster_routes.hpp"
#include "relay/deferred_requests.hpp"
#include "relay/public_connection.hpp"
#include "relay/public_route.hpp"
#include "relay/relay_state.hpp"

namespace tunnel::relay {

namespace {

using steady = std::chrono::steady_clock;
using error_code = boost::system::error_code;

// What the relay may hold for a queued request: its head, and up to a
// connection's read buffer of its body (the reader stops there).
constexpr std::size_t body_held_max = 1 << 20;

std::size_t bytes_of(const http_head& head) {
    std::size_t n = head.method.size() + head.target.size() + 16;
    for (const auto& f : head.fields) n += f.name.size() + f.value.size() + 4;
    std::size_t body = head.chunked ? body_held_max : 0;
    if (head.content_length)
        body =
            static_cast<std::size_t>(std::min<std::uint64_t>(*head.content_length, body_held_max));
    return n + body;
}

// Seconds a caller should wait before trying again: the rest of the lease's
// grace while it has no tunnel (at most max_wait), else 1.
long long retry_after(relay_state& relay, const public_route& route) {
    const auto h = relay.leases->held(route.tenant, route.name);
    if (h.lease == 0 || h.attached) return 1;
    const auto left = std::chrono::ceil<std::chrono::seconds>(
        std::min<steady::duration>(h.expires - steady::now(), relay.live()->config.queue.max_wait));
    return std::max<long long>(1, left.count());
}

}  // namespace

asio::awaitable<hold_outcome> hold_for_lease(std::shared_ptr<relay_state> relay,
                                             std::shared_ptr<public_conn> conn,
                                             const http_head& head,
                                             const std::function<void()>& start_reader) {
    hold_outcome out;
    const auto& cfg = relay->config;
    if (relay->stopping) co_return out;
    const std::string* host = head.find("Host");
    auto route =
        route_request(host ? *host : std::string_view{}, head.target, cfg.domain, routing_of(cfg));
    if (!route) co_return out;  // answered by the proxy (404, 400)
    const std::string& tenant = route->tenant;
    const std::string& name = route->name;
    auto live = [&] {
        const auto* r = relay->route(conn->worker, tenant, name);
        if (!r) return false;
        auto t = r->tunnel.lock();
        return t && !t->closing;
    };
    // A relay that has just started has not read the other relays' claims:
    // a name attached or leased elsewhere would be answered 503 here (found
    // by chaos.cluster: requests to a restarted relay). Wait for the first
    // read of Redis, at most cluster_routes::startup_sync_bound after start.
    if (relay->cluster && !live()) {
        asio::steady_timer tick(co_await asio::this_coro::executor);
        while (!relay->cluster->synced() && !relay->stopping && !live()) {
            tick.expires_after(std::chrono::milliseconds(10));
            error_code ec;
            co_await tick.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
    }
    if (cfg.queue.max_requests == 0) co_return out;
    // In a cluster (docs/cluster.md "Leases across relays"): the tunnel
    // attached to another relay that answers (the hop takes the request), or
    // a lease of another relay holding the name without a live tunnel.
    const auto* cluster = relay->cluster.get();
    auto elsewhere = [&] { return cluster && cluster->owner(tenant, name).has_value(); };
    const bool awaited_elsewhere = cluster && !live() && cluster->awaited(tenant, name);
    const bool busy = relay->queue->busy(tenant, name);
    if (!busy && !awaited_elsewhere &&
        (live() || elsewhere() || relay->leases->held(tenant, name).lease == 0))
        co_return out;

    const auto cls = class_of(cfg.queue, tenant, name, head.find(cfg.queue.priority_header));
    const auto ex = co_await asio::this_coro::executor;
    auto wake = [weak = std::weak_ptr<public_conn>(conn), ex] {
        asio::post(ex, [weak] {
            if (auto c = weak.lock()) c->data_signal.notify();
        });
    };
    auto entry = relay->queue->enqueue(tenant, name, cls, bytes_of(head), std::move(wake));
    const std::string label = fmt::format("{}/{}", tenant, name);
    if (!entry.place) {
        relay->metrics.queued.with({"full"}).inc();
        limit_hit(*relay, "queue");
        const auto wait = retry_after(*relay, *route);
        std::string message =
            entry.why == request_queue::full::requests
                ? fmt::format(
                      "{} has no tunnel right now and {} requests already wait for it "
                      "(queue.max_requests); retry after {} s",
                      label, entry.queued, wait)
                : fmt::format(
                      "{} has no tunnel right now and the requests waiting for it "
                      "already hold queue.max_bytes ({} bytes); retry after {} s",
                      label, cfg.queue.max_bytes, wait);
        // Named locals: no temporaries in a co_await's arguments (g++ 12).
        auto answer = send_error(*conn, 503, "queue_full", std::move(message), wait);
        co_await std::move(answer);
        out.answered = true;
        co_return out;
    }
    // Published between the first look and the enqueue: nobody would open it.
    if (live() || elsewhere()) relay->queue->open(tenant, name);
    spdlog::debug("{}: request queued (class {}, {} waiting)", label, to_string(cls), entry.queued);
    start_reader();
    const auto deadline = steady::now() + cfg.queue.max_wait;
    for (;;) {
        const auto st = entry.place->current();
        if (st == request_queue::state::delivered) {
            relay->metrics.queued.with({"delivered"}).inc();
            out.turn = std::move(entry.place);
            co_return out;
        }
        if (conn->closed || conn->in_eof) {
            relay->metrics.queued.with({"caller_gone"}).inc();
            conn->close();
            out.answered = true;
            co_return out;
        }
        if (st == request_queue::state::dropped) {
            relay->metrics.queued.with({"released"}).inc();
            std::string message = fmt::format(
                "the tunnel of {} did not come back within its lease's grace "
                "period, and the name was released",
                label);
            auto answer = send_error(*conn, 503, "tunnel_offline", std::move(message));
            co_await std::move(answer);
            out.answered = true;
            co_return out;
        }
        if (relay->stopping) {
            // Kept for after the restart (queue.state_file), or 503.
            auto kept = defer_request(*relay, *conn, head, tenant, name);
            if (co_await std::move(kept)) {
                out.answered = true;
                co_return out;
            }
            std::string message = "the relay is shutting down; retry in a moment";
            auto answer = send_error(*conn, 503, "shutting_down", std::move(message), 1);
            co_await std::move(answer);
            out.answered = true;
            co_return out;
        }
        if (steady::now() >= deadline) {
            relay->metrics.queued.with({"timeout"}).inc();
            limit_hit(*relay, "queue_wait");
            const auto wait = retry_after(*relay, *route);
            entry.place.reset();  // out of the queue before the answer is written
            std::string message = fmt::format(
                "{} has no tunnel right now; the request waited {} ms for it "
                "(queue.max_wait); retry after {} s",
                label, cfg.queue.max_wait.count(), wait);
            auto answer = send_error(*conn, 503, "queue_timeout", std::move(message), wait);
            co_await std::move(answer);
            out.answered = true;
            co_return out;
        }
        // An announcement of the tunnel attached elsewhere may have been
        // missed (Redis away): the mirror says so by now.
        if (st == request_queue::state::waiting && elsewhere()) relay->queue->open(tenant, name);
        // Woken by the queue, the reader (data, hang-up) or the deadline;
        // every 500 ms at least, to see a shutdown start.
        const auto until = std::min(deadline, steady::now() + std::chrono::milliseconds(500));
        (void)co_await conn->data_signal.wait(until);
    }
}

std::chrono::milliseconds lease_grace_for(const relay_config& config, const tenant_policy& policy) {
    auto grace = config.leases.grace;
    if (policy.lease_grace)
        grace = std::min(
            grace, std::chrono::duration_cast<std::chrono::milliseconds>(*policy.lease_grace));
    return grace;
}

lease_store::grant attach_lease(relay_state& relay, const std::string& tenant,
                                const std::string& presented, std::uint64_t tunnel_id,
                                std::chrono::milliseconds grace, const std::string& peer) {
    // In a cluster the client's ID is kept even when this relay does not know
    // it: another relay may hold names under it (its names come back as the
    // client publishes them; Redis checks each claim against the lease), and
    // this relay's view of the others may not be complete yet (it just
    // started). An ID is 256 random bits that only its client knows, and a
    // lease is the tenant's alone, so taking it as given grants nothing.
    const bool adopt = relay.cluster && valid_lease_id(presented);
    auto lease = relay.leases->attach(tenant, presented, tunnel_id, grace, adopt);
    if (adopt && lease.reclaimed && lease.names.empty() &&
        relay.cluster->holds_lease(tenant, lease.route_id))
        spdlog::info("tunnel attach from {} ({}): took over a lease held by another relay", peer,
                     tenant);
    if (!presented.empty() && !lease.reclaimed)
        spdlog::info(
            "tunnel attach from {} ({}): the lease ID it presented matches no lease of the "
            "tenant (expired, or never issued here): a new lease",
            peer, tenant);
    // The lease's tunnel the relay has not seen drop yet gives way.
    if (lease.previous_tunnel != 0) {
        const auto table = relay.table();
        if (auto it = table->tunnels.find(lease.previous_tunnel); it != table->tunnels.end())
            asio::post(relay.worker(it->second.worker).io, [weak = it->second.tunnel] {
                if (auto old = weak.lock(); old && old->close)
                    old->close("replaced: the client attached again with its lease");
            });
    }
    return lease;
}

std::string describe(const lease_store::grant& lease) {
    if (!lease.lease) return "none";
    if (!lease.reclaimed) return fmt::format("{} new", lease.lease);
    if (lease.names.empty()) return fmt::format("{} reclaimed", lease.lease);
    return fmt::format("{} reclaimed: holds {}", lease.lease, fmt::join(lease.names, ", "));
}

asio::awaitable<void> sweep_leases(std::shared_ptr<relay_state> relay,
                                   std::shared_ptr<asio::steady_timer> timer) {
    for (;;) {
        timer->expires_after(std::chrono::milliseconds(250));
        error_code ec;
        co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
        if (ec || relay->stopping) break;
        for (const auto& r : relay->leases->expire(steady::now())) {
            // Said before the waiting callers are answered (they may be on
            // another worker): the log never lags behind its consequence.
            const std::string names = r.names.empty() ? std::string("(no names)")
                                                      : fmt::format("{}", fmt::join(r.names, ", "));
            spdlog::info(
                "lease {} of tenant {} ended: its tunnel did not come back within the "
                "grace period; released {}",
                r.lease, r.tenant, names);
            relay->audit(
                "lease_expired",
                {{"tenant", r.tenant}, {"lease", std::to_string(r.lease)}, {"names", names}});
            for (const auto& name : r.names) relay->queue->drop(r.tenant, name);
            if (relay->cluster)
                for (const auto& name : r.names)
                    relay->cluster->released(r.tenant, name,
                                             relay->cluster->lease_key(r.route_id, 0));
        }
    }
}

}  // namespace tunnel::relay
