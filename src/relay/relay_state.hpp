// What the relay's listeners share: the configuration, the verifier, the
// host key, the attached tunnels and the route table keyed by
// (tenant, name), limits, counters. Used from the relay's one thread only.
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
#include "observe/audit_log.hpp"
#include "observe/metrics.hpp"

#include <boost/asio/ssl/context.hpp>

#include "pool/circuit_breaker.hpp"
#include "relay/rate_limiter.hpp"
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
    std::uint64_t requests = 0;
    std::uint64_t bytes_to_origin = 0;
    std::uint64_t bytes_from_origin = 0;
    bool closing = false;
    std::function<void(const std::string& reason)> close;  // ends SSH and WebSocket with a reason
    std::unique_ptr<asio::steady_timer> expiry;
    core::close_registry::handle owned;  // in relay_state::owned while attached
};

// Counters for /metrics and diagnostics.
struct relay_counters {
    std::uint64_t attaches = 0;
    std::uint64_t attach_refused = 0;
    std::uint64_t detaches = 0;
    std::uint64_t forwards_refused = 0;
    std::uint64_t requests = 0;
    std::uint64_t bad_requests = 0;
    std::uint64_t rate_limited = 0;
    std::uint64_t stream_limited = 0;
    std::uint64_t breaker_refused = 0;
    std::uint64_t origin_failures = 0;
    std::uint64_t header_timeouts = 0;
    std::uint64_t oversized = 0;
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
    observe::counter_family& visitor_refusals;  // {tenant, reason}: check_visitor codes
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
    relay_counters counters;
    observe::metrics_registry registry;
    relay_metrics metrics{registry};
    std::optional<observe::audit_log> audit_log;
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
    // Runs basic-mode password checks (libcrypt, 100+ ms) off the relay's
    // thread; after `passwords` so it is joined before the cache goes.
    asio::thread_pool hash_pool{1};

    std::map<std::uint64_t, std::shared_ptr<tunnel_entry>> tunnels;
    std::map<std::pair<std::string, std::string>, std::shared_ptr<tunnel_entry>>
        routes;  // (tenant, name)
    std::uint64_t next_tunnel_id = 1;

    std::optional<asio::ip::tcp::acceptor> public_acceptor;
    std::optional<asio::ip::tcp::acceptor> admin_acceptor;
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
    // hash-chained log when configured.
    void audit(const std::string& event,
               const std::vector<std::pair<std::string, std::string>>& fields);

    // The public URL of `name` published by `tenant`, as told to clients:
    // host-routed (scheme://<name>--<tenant>.<domain>[:port]/) when the
    // routing mode serves hosts, else path-routed
    // (scheme://<host>[:port]/t/<tenant>/<name>/). The port is left out when
    // it is the scheme's default. With name "{name}" it is the template the
    // attach's 101 carries (Tunnel-Public-Url).
    [[nodiscard]] std::string public_url(const std::string& tenant, const std::string& name) const;
    std::uint16_t public_port = 0;
    std::uint16_t admin_port = 0;
    bool tls = false;
};

}  // namespace tunnel::relay
