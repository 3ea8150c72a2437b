#include "relay/relay_state.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "core/secret_file.hpp"
#include "relay/cluster_routes.hpp"
#include "relay/dashboard.hpp"
#include "relay/lease_hold.hpp"
#include "relay/public_route.hpp"
#include "relay/tcp_routes.hpp"
#include "relay/tcp_service.hpp"
#include "usage/usage_recorder.hpp"

namespace tunnel::relay {

relay_metrics::relay_metrics(observe::metrics_registry& r)
    : attaches(
          r.counter("relay_attaches_total", "Tunnel attach attempts by outcome.", {"outcome"})),
      detaches(r.counter("relay_detaches_total", "Tunnels detached.")),
      active_tunnels(r.gauge("relay_active_tunnels", "Attached tunnels.")),
      forwards_refused(r.counter("relay_forwards_refused_total",
                                 "tcpip-forward requests refused by policy.", {"tenant"})),
      requests(r.counter("relay_requests_total",
                         "Public requests by tenant, route and status class.",
                         {"tenant", "route", "status"})),
      bytes(r.counter("relay_bytes_total", "Bytes proxied by tenant and direction.",
                      {"tenant", "direction"})),
      latency(r.histogram("relay_request_seconds",
                          "Public request latency (head read to last byte).", {"tenant"},
                          observe::default_latency_buckets())),
      ttfb(r.histogram("relay_time_to_first_byte_seconds", "Head read to the first response byte.",
                       {"tenant"}, observe::default_latency_buckets())),
      limits_hit(r.counter("relay_limits_hit_total", "Requests refused by a limit.", {"limit"})),
      breaker_open(r.gauge("relay_breaker_open",
                           "1 while a tunnel's circuit breaker is not closed.",
                           {"tenant", "route"})),
      open_connections(r.gauge("relay_public_connections", "Open public connections.")),
      connections_refused(r.counter("relay_connections_refused_total",
                                    "Public connections closed at once by a cap.", {"cap"})),
      accept_errors(r.counter("relay_accept_errors_total", "Failed accepts on the public listener.",
                              {"error"})),
      callers_cut_off(r.counter("relay_callers_cut_off_total",
                                "Requests ended because the caller was too slow.", {"why"})),
      attach_throttled(r.counter("relay_attach_throttled_total",
                                 "Attach attempts answered 429 unverified: their source had too "
                                 "many refusals in the window.")),
      tenant_limits(r.counter("relay_tenant_limits_total",
                              "Attaches and forwards refused by a per-tenant cap.", {"limit"})),
      tunnel_overflows(r.counter("relay_tunnel_overflows_total",
                                 "Tunnels closed because the client ignored the SSH window.",
                                 {"tenant"})),
      origin_failures(r.counter("relay_origin_failures_total",
                                "Origin failures the circuit breakers counted (refused channel, "
                                "no or malformed answer, no answer in time).")),
      bad_requests(r.counter("relay_bad_requests_total",
                             "Public requests refused as malformed (head or route).")),
      audit_write_failures(
          r.counter("relay_audit_write_failures_total",
                    "Audit records that could not be written (attaches are refused meanwhile).")),
      visitor_refusals(r.counter("relay_visitor_refusals_total",
                                 "Public requests refused by a name's visitor access policy.",
                                 {"tenant", "reason"})),
      queued(r.counter("relay_queued_requests_total",
                       "Requests that waited for a leased name's tunnel, by how the wait ended "
                       "(delivered, full, timeout, released, caller_gone), and requests that went "
                       "back to wait (requeued: their tunnel dropped before they started), or were "
                       "kept for after a restart (deferred: queue.state_file).",
                       {"outcome"})),
      hops(r.counter("relay_cluster_hops_total",
                     "Requests proxied between relays of a cluster, by outcome: sent (to the "
                     "owner), reused (on a pooled hop connection), retried (again after a pooled "
                     "one closed), failed (the owner unreachable), stale (the owner had no "
                     "tunnel for it), requeued (waits for the lease's tunnel again), received "
                     "(from another relay), refused (a bad or unauthenticated hop).",
                     {"outcome"})),
      cluster_rates(r.counter("relay_cluster_rate_limits_total",
                              "The cluster's shared rate limits: batches fetched from Redis "
                              "(fetched, short, failed) and requests decided by this relay alone "
                              "while Redis was away (local).",
                              {"outcome"})) {}

relay_state::relay_state(asio::io_context& io_context, relay_config cfg, token_verifier v,
                         ssh::server_identity id)
    : io(io_context), config(std::move(cfg)), verifier(std::move(v)), identity(std::move(id)) {
    live_.store(std::make_shared<const live_settings>(live_settings{config, verifier, {}, 1}));
}

unsigned relay_state::worker_of(const asio::any_io_executor& ex) const {
    const auto* context = &asio::query(ex, asio::execution::context);
    for (const auto& w : workers)
        if (static_cast<const asio::execution_context*>(&w->io) == context) return w->index;
    return 0;
}

unsigned relay_state::pick_worker() const {
    // Ties (attaches arriving together see the same counts: a tunnel is
    // counted once its SSH session is up) go round the workers.
    static std::atomic<unsigned> rotation{0};
    const auto n = static_cast<unsigned>(workers.size());
    const unsigned start = rotation.fetch_add(1, std::memory_order_relaxed) % n;
    unsigned best = start;
    unsigned fewest = ~0u;
    for (unsigned k = 0; k < n; ++k) {
        const unsigned i = (start + k) % n;
        const unsigned c = workers[i]->tunnel_count.load(std::memory_order_relaxed);
        if (c < fewest) {
            fewest = c;
            best = i;
        }
    }
    return best;
}

core::close_registry::handle relay_state::own(unsigned worker, std::string what,
                                              std::function<void()> close) {
    if (worker == 0 || worker >= workers.size())
        return owned.add(std::move(what), std::move(close));
    return owned.add(std::move(what), [io = &workers[worker]->io, close = std::move(close)] {
        asio::post(*io, close);
    });
}

template <class Fn>
void relay_state::update_table(Fn&& fn) {
    std::lock_guard lock(table_mutex_);
    auto next = std::make_shared<route_table>(*table_);
    fn(*next);
    table_ = std::move(next);
    table_version_.fetch_add(1, std::memory_order_release);
}

std::shared_ptr<const route_table> relay_state::table() const {
    std::lock_guard lock(table_mutex_);
    return table_;
}

const route_table::route_ref* relay_state::route(unsigned w, const std::string& tenant,
                                                 const std::string& name) {
    auto& wk = *workers[w];
    if (!wk.cached || wk.cached_version != table_version_.load(std::memory_order_acquire)) {
        std::lock_guard lock(table_mutex_);
        wk.cached = table_;
        wk.cached_version = table_version_.load(std::memory_order_relaxed);
    }
    auto it = wk.cached->routes.find(std::make_pair(tenant, name));
    return it == wk.cached->routes.end() ? nullptr : &it->second;
}

std::shared_ptr<tunnel_entry> relay_state::find(unsigned w, const std::string& tenant,
                                                const std::string& name) {
    const auto* r = route(w, tenant, name);
    if (!r || r->worker != w) return nullptr;
    return r->tunnel.lock();
}

core::result<std::uint32_t> relay_state::publish(const std::shared_ptr<tunnel_entry>& t,
                                                 const std::string& address, std::uint32_t port,
                                                 std::string access) {
    auto name = normalize_label(address, "service name");
    if (!name) return tl::unexpected(name.error());
    if (std::chrono::system_clock::now() >= t->policy.expires)
        return core::fail(core::errc::denied, "the tunnel's token has expired");
    if (!may_publish(t->policy, *name))
        return core::fail(
            core::errc::denied,
            fmt::format("the token of tenant {} does not allow the name {:?} (allowed: {})",
                        t->policy.tenant, *name, fmt::join(t->policy.allow, ", ")));
    auto key = std::make_pair(t->policy.tenant, *name);
    if (tcp && tcp->find(key.first, key.second))  // a name is either HTTP or raw TCP
        return core::fail(core::errc::denied,
                          fmt::format("{:?} is published as a raw TCP name of tenant {}", *name,
                                      t->policy.tenant));
    // A name another relay's lease holds is refused like a taken one (cluster_routes.hpp).
    if (cluster)
        if (auto free =
                cluster->check(key.first, key.second, cluster->lease_key(t->lease_route, t->id));
            !free)
            return tl::unexpected(free.error());
    // A name a lease holds is its tunnel's alone (lease_store.hpp).
    const bool held_before = t->lease != 0 && leases->held(key.first, key.second).lease == t->lease;
    if (auto claimed = leases->claim(t->lease, key.first, key.second); !claimed)
        return tl::unexpected(claimed.error());
    bool taken = false;
    update_table([&](route_table& table) {
        // A tunnel re-attached with the lease of the route's tunnel takes it over.
        if (auto it = table.routes.find(key); it != table.routes.end() && it->second.id != t->id &&
                                              (t->lease == 0 || it->second.lease != t->lease)) {
            taken = true;
            return;
        }
        table.routes[key] =
            route_table::route_ref{t, t->id, t->worker, t->lease, std::move(access)};
    });
    if (taken) {
        if (!held_before) leases->release(t->lease, key.first, key.second);
        return core::fail(core::errc::denied,
                          fmt::format("{:?} is already published by another tunnel of tenant {}",
                                      *name, t->policy.tenant));
    }
    const std::uint32_t bound = port == 0 ? 80 : port;
    t->names[*name] = bound;
    if (cluster)
        cluster->claimed(
            key.first, key.second, cluster->lease_key(t->lease_route, t->id),
            t->lease != 0 ? lease_grace_for(config, t->policy) : std::chrono::milliseconds(0));
    if (usage) usage->name_up(key.first, key.second, std::chrono::system_clock::now());
    queue->open(key.first, key.second);  // requests waiting for it go now, in order
    return bound;
}

namespace {

// Closes pooled channels after the current handler (this may run inside the
// session's packet loop, where a channel must not be closed).
void close_later(asio::io_context& io, std::vector<std::unique_ptr<ssh::server_channel>> chs) {
    if (chs.empty()) return;
    asio::post(io, [chs = std::make_shared<decltype(chs)>(std::move(chs))] { chs->clear(); });
}

}  // namespace

void relay_state::unpublish(const tunnel_entry& t, const std::string& address) {
    std::string name = address;
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto key = std::make_pair(t.policy.tenant, name);
    bool removed = false;
    update_table([&](route_table& table) {
        if (auto it = table.routes.find(key); it != table.routes.end() && it->second.id == t.id) {
            table.routes.erase(it);
            removed = true;
        }
    });
    if (removed && usage) usage->name_down(key.first, key.second, std::chrono::system_clock::now());
    // Unpublished on purpose: the lease lets the name go, and nobody waits for it.
    if (removed || t.lease != 0) {
        leases->release(t.lease, key.first, key.second);
        queue->drop(key.first, key.second);
        if (cluster)
            cluster->released(key.first, key.second, cluster->lease_key(t.lease_route, t.id));
    }
    if (t.idle) close_later(workers[t.worker]->io, t.idle->release(name));
}

void relay_state::add(const std::shared_ptr<tunnel_entry>& t) {
    update_table([&](route_table& table) {
        table.tunnels[t->id] = route_table::tunnel_ref{t, t->policy.tenant, t->worker};
    });
    auto& w = *workers[t->worker];
    w.tunnels[t->id] = t;
    w.tunnel_count.store(static_cast<unsigned>(w.tunnels.size()), std::memory_order_relaxed);
}

void relay_state::remove(std::uint64_t id, unsigned worker) {
    std::shared_ptr<tunnel_entry> t;
    auto& w = *workers[worker];
    if (auto it = w.tunnels.find(id); it != w.tunnels.end()) {
        t = it->second;
        w.tunnels.erase(it);
        w.tunnel_count.store(static_cast<unsigned>(w.tunnels.size()), std::memory_order_relaxed);
    }
    std::vector<std::pair<std::string, std::string>> gone;  // its routes (not taken over)
    update_table([&](route_table& table) {
        table.tunnels.erase(id);
        for (auto it = table.routes.begin(); it != table.routes.end();) {
            if (it->second.id != id) {
                ++it;
                continue;
            }
            gone.push_back(it->first);
            it = table.routes.erase(it);
        }
    });
    if (usage)
        for (const auto& [tenant, name] : gone)
            usage->name_down(tenant, name, std::chrono::system_clock::now());
    if (!t) return;
    tcp_tunnel_gone(*this, *t);  // its raw TCP listeners close (tcp_service.hpp)
    // Its names stay with its lease for the grace period (requests for them
    // queue); without a lease, or released on purpose, they go now. Names a
    // tunnel re-attached with its lease has taken over are not touched.
    for (const auto& [tenant, name] : gone) queue->close(tenant, name);
    auto released = leases->detach(t->lease, t->id, t->release_lease || t->lease == 0);
    if (t->lease == 0)
        for (const auto& [tenant, name] : gone) queue->drop(tenant, name);
    for (const auto& name : released.names) queue->drop(released.tenant, name);
    if (cluster) {
        const auto lease_key = cluster->lease_key(t->lease_route, t->id);
        for (const auto& [tenant, name] : gone) {
            const bool let_go =
                t->lease == 0 || std::find(released.names.begin(), released.names.end(), name) !=
                                     released.names.end();
            if (let_go)
                cluster->released(tenant, name, lease_key);
            else
                cluster->held(tenant, name, lease_key, lease_grace_for(config, t->policy));
        }
    }
    if (t->lease != 0 && !released.names.empty())
        spdlog::info("tunnel {} ({}): its lease released {} at once ({})", t->id, t->policy.tenant,
                     fmt::join(released.names, ", "),
                     t->release_lease ? "the client left on purpose" : "no grace period");
    t->names.clear();
    if (t->idle) close_later(workers[t->worker]->io, t->idle->release_all());
}

bool relay_state::audit(const std::string& event,
                        const std::vector<std::pair<std::string, std::string>>& fields) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [k, v] : fields) j[k] = v;
    if (dashboard) dashboard->note_audit(event, j);
    std::lock_guard lock(audit_mutex);
    if (!audit_log) {
        spdlog::debug("audit {} {}", event,
                      j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        return true;
    }
    auto a = audit_log->append(event, j);
    if (a) return true;
    metrics.audit_write_failures.with({}).inc();
    // An error line per failure would fill the same disk: one per 10 s, with a count.
    const auto now = std::chrono::steady_clock::now();
    if (audit_error_logged_ == std::chrono::steady_clock::time_point{} ||
        now - audit_error_logged_ >= std::chrono::seconds(10)) {
        spdlog::error(
            "audit log: {} (event {} not recorded{}); attaches are refused until it can be "
            "written",
            a.error().message, event,
            audit_errors_unlogged_
                ? fmt::format(", {} more failures since the last message", audit_errors_unlogged_)
                : std::string());
        audit_error_logged_ = now;
        audit_errors_unlogged_ = 0;
    } else {
        ++audit_errors_unlogged_;
    }
    return false;
}

void relay_state::close_admin() {
    boost::system::error_code ignored;
    if (admin_acceptor) admin_acceptor->close(ignored);
    if (admin_server) admin_server->close();
    if (dashboard) dashboard->close();
}

core::result<observe::audit_log> open_audit_log(const relay_config& config) {
    observe::audit_log_options o;
    o.path = config.audit_log;
    o.max_bytes = config.audit.max_bytes;
    o.keep = config.audit.keep;
    if (!config.audit.hmac_key_file.empty()) {
        auto key = core::read_secret_file(config.audit.hmac_key_file, "audit.hmac_key_file", 32);
        if (!key) return tl::unexpected(key.error());
        o.hmac_key = std::move(*key);
    }
    return observe::audit_log::open(std::move(o));
}

std::string relay_state::public_url(const std::string& tenant, const std::string& name) const {
    const std::string scheme = tls ? "https" : "http";
    const bool default_port = public_port == (tls ? 443 : 80);
    const std::string port = default_port ? std::string() : fmt::format(":{}", public_port);
    if (routes_by_host(routing_of(config)) && !config.domain.empty())
        return fmt::format("{}://{}--{}.{}{}/", scheme, name, tenant, config.domain, port);
    std::string host = config.domain;
    if (host.empty())
        host = config.listen.host.empty() || config.listen.host == "0.0.0.0" ? "127.0.0.1"
                                                                             : config.listen.host;
    if (host.find(':') != std::string::npos) host = "[" + host + "]";
    return fmt::format("{}://{}{}/t/{}/{}/", scheme, host, port, tenant, name);
}

}  // namespace tunnel::relay
