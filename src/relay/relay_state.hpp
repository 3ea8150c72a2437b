// What the relay's workers share: the configuration, the verifier, the
// host key, the route table keyed by (tenant, name) and the tunnel list,
// limits, metrics, the audit log and the admin server; and what each worker
// owns (relay_worker). docs/relay.md "Threading model" says which thread
// touches what and how shared parts are protected.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/asio.hpp"
#include "core/close_registry.hpp"
#include "observe/admin_http_server.hpp"
#include "observe/audit_log.hpp"
#include "observe/metrics.hpp"

#include <boost/asio/ssl/context.hpp>

#include "pool/circuit_breaker.hpp"
#include "relay/channel_pool.hpp"
#include "relay/connection_gate.hpp"
#include "relay/deferred_requests.hpp"
#include "relay/hop_preamble.hpp"
#include "relay/lease_store.hpp"
#include "relay/live_settings.hpp"
#include "relay/rate_limiter.hpp"
#include "relay/refusal_throttle.hpp"
#include "relay/relay_config.hpp"
#include "relay/request_queue.hpp"
#include "relay/request_trace.hpp"
#include "relay/revocation_list.hpp"
#include "relay/share_store.hpp"
#include "relay/shared_rate_limiter.hpp"
#include "relay/token_verifier.hpp"
#include "relay/visitor_access.hpp"
#include "ssh/server_session.hpp"

namespace tunnel::usage {
class usage_recorder;
class redis_usage;
}  // namespace tunnel::usage

namespace tunnel::relay {

class hop_pool;

class dashboard_feed;
class tcp_routes;
class cluster_routes;

// One attached client: its SSH session (over a WebSocket), the names it
// published, its limits and counters. Pinned to one worker: everything but
// the atomics and the fields fixed at attach (id, worker, policy, peer,
// attached_at) is touched on that worker's thread only.
struct tunnel_entry {
    std::uint64_t id = 0;
    unsigned worker = 0;  // relay_state::workers index: the thread that owns it
    tenant_policy policy;
    std::string peer;  // "ip:port" of the attaching client
    std::chrono::system_clock::time_point attached_at;
    std::shared_ptr<ssh::server_session> ssh;
    std::map<std::string, std::uint32_t> names;   // published name -> forward port
    std::map<std::string, access_policy> access;  // published name -> who may call it
    std::atomic<unsigned> active_streams{0};
    std::unique_ptr<pool::circuit_breaker> breaker;
    // The breaker's state as the owner last saw it (after each request): for
    // the admin API on worker 0.
    std::atomic<pool::breaker_state> breaker_seen{pool::breaker_state::closed};
    std::unique_ptr<channel_pool> idle;  // keep-alive channels per name (channel_pool.hpp)
    std::atomic<std::uint64_t> requests{0};
    std::atomic<std::uint64_t> bytes_to_origin{0};
    std::atomic<std::uint64_t> bytes_from_origin{0};
    std::atomic<bool> closing{false};
    std::function<void(const std::string& reason)> close;  // ends SSH and WebSocket with a reason
    std::unique_ptr<asio::steady_timer> expiry;
    core::close_registry::handle owned;  // in relay_state::owned while attached
    // Its lease (lease_store.hpp; 0: none, the client did not ask for one),
    // and whether the client released it on purpose as it left.
    std::uint64_t lease = 0;
    bool release_lease = false;
    std::string lease_route;  // lease_route_id of its lease (empty: none)
};

// The relay's Prometheus families (STYLE 12); label sets bounded by the
// registry (tenant and route = published name; never paths).
struct relay_metrics {
    explicit relay_metrics(observe::metrics_registry& r);
    observe::counter_family& attaches;          // {outcome}: attached, refused, failed
    observe::counter_family& detaches;          // {}
    observe::gauge_family& active_tunnels;      // {}
    observe::counter_family& forwards_refused;  // {tenant}
    observe::counter_family& requests;    // {tenant, route, status}: status class "2xx".."5xx"
    observe::counter_family& bytes;       // {tenant, direction}: to_origin, from_origin
    observe::histogram_family& latency;   // {tenant}: head read -> last response byte, seconds
    observe::histogram_family& ttfb;      // {tenant}: head read -> first response byte, seconds
    observe::counter_family& limits_hit;  // {limit}
    observe::gauge_family&
        breaker_open;  // {tenant, route}: 1 while a tunnel's breaker is not closed
    // Public connections (finding 6) and slow callers (finding 5).
    observe::gauge_family& open_connections;        // {}
    observe::counter_family& connections_refused;   // {cap}: max_connections, ..._per_ip, ...
    observe::counter_family& accept_errors;         // {error}: emfile, enfile, enobufs, ...
    observe::counter_family& callers_cut_off;       // {why}: write_timeout, body_rate
    observe::counter_family& attach_throttled;      // {}: attaches answered 429 unverified
    observe::counter_family& tenant_limits;         // {limit}: tunnels, names
    observe::counter_family& tunnel_overflows;      // {tenant}: tunnels closed for ignoring
                                                    // the SSH window
    observe::counter_family& origin_failures;       // {}: failures the breakers counted
    observe::counter_family& bad_requests;          // {}: malformed heads and routes
    observe::counter_family& audit_write_failures;  // {}: records the audit log could not take
    observe::counter_family& visitor_refusals;      // {tenant, reason}: check_visitor codes
    observe::counter_family& queued;  // {outcome}: requests that waited for a leased name
    // The cluster's proxy hop (cluster_hop.hpp): {outcome} sent, failed (the
    // owner unreachable), received, refused.
    observe::counter_family& hops;
    // The cluster's shared rate limits (shared_rate_limiter.hpp): {outcome}
    // fetched (a full batch), short (the shared bucket ran low), failed
    // (Redis did not answer), local (a request decided by this relay's own
    // buckets while Redis was away).
    observe::counter_family& cluster_rates;
};

// The route table and the tunnel list, as one immutable snapshot: replaced
// (copy on write) on attach, publish, unpublish and detach; read by every
// worker through its cached copy. Tunnels are held weakly (their owner
// worker holds them): a snapshot may be dropped on any thread.
struct route_table {
    struct tunnel_ref {
        std::weak_ptr<tunnel_entry> tunnel;
        std::string tenant;
        unsigned worker = 0;
    };
    struct route_ref {
        std::weak_ptr<tunnel_entry> tunnel;
        std::uint64_t id = 0;
        unsigned worker = 0;
        std::uint64_t lease = 0;  // the tunnel's lease: a tunnel re-attached with it may take over
        std::string access{};     // who may call it, as access_policy::describe() says (dashboard)
    };
    std::map<std::uint64_t, tunnel_ref> tunnels;
    std::map<std::pair<std::string, std::string>, route_ref> routes;  // (tenant, name)
};

// One worker thread's share of the relay: its io_context (worker 0's is the
// one given to relay_server::create), its accept loop's acceptor, the tunnels
// pinned to it, and its cached route table. Touched only on its own thread,
// except tunnel_count (atomic) and io.
struct relay_worker {
    relay_worker(unsigned i, asio::io_context& context) : index(i), io(context) {}
    unsigned index;
    asio::io_context& io;
    std::optional<asio::ip::tcp::acceptor> acceptor;
    std::map<std::uint64_t, std::shared_ptr<tunnel_entry>> tunnels;  // pinned here
    std::atomic<unsigned> tunnel_count{0};
    std::shared_ptr<const route_table> cached;  // route_table as last seen here
    std::uint64_t cached_version = 0;
    // Workers 1..N-1: keeps run() going until the relay closes (worker 0's
    // io_context is run by relay_server's owner, as before).
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
    std::atomic<bool> thread_done{false};  // its thread's run() returned
    // Idle connections to other relays of the cluster (hop_pool.hpp);
    // created on first use.
    std::shared_ptr<hop_pool> hops;
};

class relay_state {
  public:
    relay_state(asio::io_context& io, relay_config config, token_verifier verifier,
                ssh::server_identity identity);

    asio::io_context& io;  // worker 0's
    relay_config config;
    // Leases and the request queue (docs/relay.md "Leases and the request
    // queue"): who holds each name, and requests waiting for a leased name's
    // tunnel. Thread-safe.
    std::unique_ptr<lease_store> leases = make_memory_lease_store();
    std::shared_ptr<request_queue> queue =
        std::make_shared<request_queue>(config.queue.max_requests, config.queue.max_bytes);
    // Every worker, [0] on `io`; created by relay_server::create (its
    // io_contexts and threads belong to relay_server).
    std::vector<std::unique_ptr<relay_worker>> workers;
    [[nodiscard]] relay_worker& worker(unsigned i) { return *workers[i]; }
    // The worker whose io_context runs `ex` (0 when none does).
    [[nodiscard]] unsigned worker_of(const asio::any_io_executor& ex) const;
    // The worker a new tunnel is pinned to: the one with the fewest tunnels.
    [[nodiscard]] unsigned pick_worker() const;
    token_verifier verifier;
    std::optional<token_verifier> visitor_tokens;  // visitors.secret_file set: the token mode
    password_cache passwords;                      // basic mode's verified passwords
    // Share grants (share_store.hpp), set by relay_server::create.
    std::unique_ptr<share_store> shares;
    // Revoked token IDs (revocation_list.hpp), set by relay_server::create.
    std::unique_ptr<revocation_list> revocations;
    // queue.state_file: requests kept across a graceful restart
    // (deferred_requests.hpp); null without it.
    std::unique_ptr<deferred_store> deferred;
    // What a reload may change (live_settings.hpp; config_reload.hpp): read
    // per request with live(), swapped whole by set_live(). `config` and
    // `verifier` above stay as started (the keys that need a restart).
    [[nodiscard]] std::shared_ptr<const live_settings> live() const {
        return live_.load(std::memory_order_acquire);
    }
    void set_live(std::shared_ptr<const live_settings> next) {
        live_.store(std::move(next), std::memory_order_release);
    }
    ssh::server_identity identity;
    rate_limiter limiter;
    // With `cluster:`: the tenant and route buckets shared by every relay,
    // refilled in batches from Redis, `limiter` while Redis is away
    // (shared_rate_limiter.hpp); null for a single relay.
    std::shared_ptr<shared_rate_limiter> shared_rates;
    // Where admission takes its tokens: shared_rates, else limiter.
    [[nodiscard]] rate_source& rates() {
        if (shared_rates) return *shared_rates;
        return limiter;
    }
    observe::metrics_registry registry;
    relay_metrics metrics{registry};
    // Tracing (docs/relay.md "Tracing"): where spans go; null when it is off.
    std::unique_ptr<observe::span_exporter> tracer = make_tracer(config.tracing, registry);
    std::optional<observe::audit_log> audit_log;
    // Caps on public connections (limits.max_connections etc., resolved by
    // relay_server::create), refused attaches per source, and attaches of a
    // tenant past the token check that are not in `tunnels` yet (so
    // concurrent attaches cannot slip past limits.max_tunnels_per_tenant).
    connection_gate connections{caps_of(config.limits)};
    refusal_throttle attach_refusals{
        {config.limits.attach_refusals_per_ip, config.limits.attach_refusal_window}};
    // Visitors' wrong credentials per source (limits.visitor_failures_per_ip)
    // and basic-mode password checks queued on hash_pool right now.
    refusal_throttle visitor_failures{
        {config.limits.visitor_failures_per_ip, config.limits.visitor_failure_window}};
    std::atomic<unsigned> password_checks{0};
    // Attaches past the token check, per tenant, and the tenant-cap check
    // that counts them with the attached tunnels: under tenants_mutex.
    std::mutex tenants_mutex;
    std::map<std::string, unsigned> attaching;
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
    // Runs basic-mode password checks (libcrypt, 100+ ms) off the relay's
    // thread; after `passwords` so it is joined before the cache goes.
    asio::thread_pool hash_pool{1};

    std::atomic<std::uint64_t> next_tunnel_id{1};
    // Workers whose accept loop is in a burst of failures (EMFILE): the
    // first to enter says so, the last to recover says so.
    std::atomic<unsigned> accept_bursts{0};

    std::optional<asio::ip::tcp::acceptor> admin_acceptor;  // until create_admin() takes it
    std::shared_ptr<observe::admin_http_server> admin_server;
    // The web dashboard's live feed (dashboard.hpp); created by create_admin.
    std::shared_ptr<dashboard_feed> dashboard;
    // Usage analytics (config `usage:`; null when off): requests counted by
    // request_record, published time by publish/unpublish/remove.
    std::shared_ptr<usage::usage_recorder> usage;
    // In a cluster: the recorder's counts go to Redis, and /api/v1/usage
    // reads them there (usage/redis_usage.hpp); null otherwise.
    std::shared_ptr<usage::redis_usage> cluster_usage;
    // Raw TCP names and their ports (tcp_routes.hpp; null without tcp.ports).
    std::shared_ptr<tcp_routes> tcp;
    // The cluster route table (config `cluster:`; null for a single relay).
    std::shared_ptr<cluster_routes> cluster;
    // The proxy hop (cluster_hop.hpp; with `cluster:` only): the
    // internal_listen acceptor (worker 0's; closed with the public ones), the
    // signer holding cluster.secret_file, the nonces seen, and the internal
    // connections that have not sent a valid preamble yet.
    std::optional<asio::ip::tcp::acceptor> internal_acceptor;
    std::unique_ptr<hop_signer> hop_keys;
    hop_replay_cache hop_nonces;
    std::atomic<unsigned> hop_pending{0};
    std::optional<asio::ssl::context> tls_context;

    std::atomic<bool> stopping{false};
    std::atomic<unsigned> in_flight{0};  // public requests being proxied, all workers
    // Set by shutdown, on worker 0: called there (posted) when in_flight
    // drops to 0 while stopping.
    std::function<void()> on_drained;

    // Everything the relay must close for its io_context to run out of work
    // (relay_server::shutdown / close): public connections, tunnels (SSH
    // session, WebSocket and pumps), timers. Owners register and keep the handle.
    core::close_registry owned;
    // Registers `close` for a thing owned by `worker`: close_all() (on
    // worker 0) calls it there directly, and posts it to any other worker.
    [[nodiscard]] core::close_registry::handle own(unsigned worker, std::string what,
                                                   std::function<void()> close);

    // Route table: a name belongs to at most one tunnel of a tenant. These
    // run on the tunnel's worker; each replaces the snapshot.
    // `access` describes who may call it (for the dashboard).
    [[nodiscard]] core::result<std::uint32_t> publish(const std::shared_ptr<tunnel_entry>& t,
                                                      const std::string& name, std::uint32_t port,
                                                      std::string access = {});
    void unpublish(const tunnel_entry& t, const std::string& name);
    // Registers an attached tunnel (with its worker) / forgets it and its names.
    void add(const std::shared_ptr<tunnel_entry>& t);
    // `worker`: the tunnel's (the caller's thread).
    void remove(std::uint64_t id, unsigned worker);
    // The current snapshot (takes the table's mutex: attach, admin, shutdown).
    [[nodiscard]] std::shared_ptr<const route_table> table() const;
    // The route of (tenant, name) as worker `w` sees it (its cached snapshot,
    // re-taken when the version moved: one atomic load otherwise).
    [[nodiscard]] const route_table::route_ref* route(unsigned w, const std::string& tenant,
                                                      const std::string& name);
    // The tunnel publishing (tenant, name) when it is pinned to worker `w`
    // (call on that worker); nullptr when there is none or it is elsewhere.
    [[nodiscard]] std::shared_ptr<tunnel_entry> find(unsigned w, const std::string& tenant,
                                                     const std::string& name);

    // Audit events (attach, detach, denial, refusal, admin actions); the
    // hash-chained log when configured. False when the record could not be
    // written (disk full, file not writable): counted in
    // relay_audit_write_failures_total and logged as an error. Attaches are
    // refused (503) while that is so: an attach that cannot be audited does
    // not happen.
    bool audit(const std::string& event,
               const std::vector<std::pair<std::string, std::string>>& fields);
    std::mutex audit_mutex;  // audit() and readers of audit_log

    // The public URL of `name` published by `tenant`, as told to clients:
    // host-routed (scheme://<name>--<tenant>.<domain>[:port]/) when the
    // routing mode serves hosts, else path-routed
    // (scheme://<host>[:port]/t/<tenant>/<name>/). The port is left out when
    // it is the scheme's default. With name "{name}" it is the template the
    // attach's 101 carries (Tunnel-Public-Url).
    [[nodiscard]] std::string public_url(const std::string& tenant, const std::string& name) const;

    // Closes the admin listener and its connections (shutdown).
    void close_admin();
    std::uint16_t public_port = 0;
    std::uint16_t admin_port = 0;
    bool tls = false;

  private:
    std::atomic<std::shared_ptr<const live_settings>> live_;
    template <class Fn>
    void update_table(Fn&& fn);
    mutable std::mutex table_mutex_;
    std::shared_ptr<const route_table> table_ = std::make_shared<route_table>();
    std::atomic<std::uint64_t> table_version_{1};
    std::chrono::steady_clock::time_point audit_error_logged_{};
    std::uint64_t audit_errors_unlogged_ = 0;
};

// Opens the audit log the config asks for (path, HMAC key file, rotation).
[[nodiscard]] core::result<observe::audit_log> open_audit_log(const relay_config& config);

}  // namespace tunnel::relay
