// What the relay's listeners share: the configuration, the verifier, the
// host key, the attached tunnels and the route table keyed by
// (tenant, name), limits, metrics, the audit log and the admin server.
// Used from the relay's one thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
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
#include "relay/rate_limiter.hpp"
#include "relay/refusal_throttle.hpp"
#include "relay/relay_config.hpp"
#include "relay/token_verifier.hpp"
#include "relay/visitor_access.hpp"
#include "ssh/server_session.hpp"

namespace tunnel::relay {

// One attached client: its SSH session (over a WebSocket), the names it
// published, its limits and counters.
struct tunnel_entry {
    std::uint64_t id = 0;
    tenant_policy policy;
    std::string peer;  // "ip:port" of the attaching client
    std::chrono::system_clock::time_point attached_at;
    std::shared_ptr<ssh::server_session> ssh;
    std::map<std::string, std::uint32_t> names;   // published name -> forward port
    std::map<std::string, access_policy> access;  // published name -> who may call it
    unsigned active_streams = 0;
    std::unique_ptr<pool::circuit_breaker> breaker;
    std::unique_ptr<channel_pool> idle;  // keep-alive channels per name (channel_pool.hpp)
    std::uint64_t requests = 0;
    std::uint64_t bytes_to_origin = 0;
    std::uint64_t bytes_from_origin = 0;
    bool closing = false;
    std::function<void(const std::string& reason)> close;  // ends SSH and WebSocket with a reason
    std::unique_ptr<asio::steady_timer> expiry;
    core::close_registry::handle owned;  // in relay_state::owned while attached
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
};

class relay_state {
  public:
    relay_state(asio::io_context& io, relay_config config, token_verifier verifier,
                ssh::server_identity identity);

    asio::io_context& io;
    relay_config config;
    token_verifier verifier;
    std::optional<token_verifier> visitor_tokens;  // visitors.secret_file set: the token mode
    password_cache passwords;                      // basic mode's verified passwords
    ssh::server_identity identity;
    rate_limiter limiter;
    observe::metrics_registry registry;
    relay_metrics metrics{registry};
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
    unsigned password_checks = 0;
    std::map<std::string, unsigned> attaching;
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
    // Runs basic-mode password checks (libcrypt, 100+ ms) off the relay's
    // thread; after `passwords` so it is joined before the cache goes.
    asio::thread_pool hash_pool{1};

    std::map<std::uint64_t, std::shared_ptr<tunnel_entry>> tunnels;
    std::map<std::pair<std::string, std::string>, std::shared_ptr<tunnel_entry>>
        routes;  // (tenant, name)
    std::uint64_t next_tunnel_id = 1;

    std::optional<asio::ip::tcp::acceptor> public_acceptor;
    std::optional<asio::ip::tcp::acceptor> admin_acceptor;  // until create_admin() takes it
    std::shared_ptr<observe::admin_http_server> admin_server;
    std::optional<asio::ssl::context> tls_context;

    bool stopping = false;
    unsigned in_flight = 0;            // public requests being proxied
    std::function<void()> on_drained;  // set by shutdown: called when in_flight drops to 0

    // Everything the relay must close for its io_context to run out of work
    // (relay_server::shutdown / close): public connections, tunnels (SSH
    // session, WebSocket and pumps), timers. Owners register and keep the handle.
    core::close_registry owned;

    // Route table: a name belongs to at most one tunnel of a tenant.
    [[nodiscard]] core::result<std::uint32_t> publish(const std::shared_ptr<tunnel_entry>& t,
                                                      const std::string& name, std::uint32_t port);
    void unpublish(const tunnel_entry& t, const std::string& name);
    void remove(std::uint64_t id);
    [[nodiscard]] std::shared_ptr<tunnel_entry> find(const std::string& tenant,
                                                     const std::string& name) const;

    // Audit events (attach, detach, denial, refusal, admin actions); the
    // hash-chained log when configured. False when the record could not be
    // written (disk full, file not writable): counted in
    // relay_audit_write_failures_total and logged as an error. Attaches are
    // refused (503) while that is so: an attach that cannot be audited does
    // not happen.
    bool audit(const std::string& event,
               const std::vector<std::pair<std::string, std::string>>& fields);

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
    std::chrono::steady_clock::time_point audit_error_logged_{};
    std::uint64_t audit_errors_unlogged_ = 0;
};

// Opens the audit log the config asks for (path, HMAC key file, rotation).
[[nodiscard]] core::result<observe::audit_log> open_audit_log(const relay_config& config);

}  // namespace tunnel::relay
