// A relay's part of the cluster route table (docs/cluster.md "A relay in a
// cluster"). The relay decides a publish synchronously (the SSH forward is
// answered at once), so it asks a local mirror of the other relays' claims,
// kept current by their announcements on `<prefix>routes` (pub/sub) and
// rebuilt from Redis after every (re)connection: a name another relay's
// lease holds is refused like any taken name. Then the claim goes to Redis
// (route_table: atomic, lease-checked); a claim Redis refuses (two relays
// published the same name within the announcement's flight time) is logged
// and counted as a conflict.
//
// The relay's own claims are remembered here: refreshed while their tunnels
// are attached (ttl 15 s, every 5 s), given the lease's grace when they
// drop, and claimed again when Redis comes back after an outage. While Redis
// is away the relay keeps serving the routes it knows and publishes on its
// own judgement (the mirror as last seen). A rebuild after a reconnection
// adds what Redis holds to the mirror but forgets no unexpired claim Redis
// lacks (a restarted Redis is empty until each owner claims again), nor
// anything heard while it read.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "cluster/redis_client.hpp"
#include "cluster/route_table.hpp"
#include "core/asio.hpp"
#include "core/error.hpp"
#include "relay/cluster_config.hpp"

namespace tunnel::relay {

class cluster_routes : public std::enable_shared_from_this<cluster_routes> {
  public:
    using clock = std::chrono::steady_clock;
    static constexpr std::chrono::milliseconds claim_ttl{15'000};
    static constexpr std::chrono::milliseconds refresh_every{5'000};
    static constexpr std::size_t max_mirror = 100'000;

    [[nodiscard]] static std::shared_ptr<cluster_routes> create(asio::io_context& io,
                                                                const cluster_config& config,
                                                                std::string prefix = "tunnel:");
    void start();
    void stop();

    // Thread-safe. Refused (errc::denied) while another relay's lease holds
    // tenant/name, as this relay last heard.
    [[nodiscard]] core::result<void> check(const std::string& tenant, const std::string& name,
                                           const std::string& lease) const;
    // Thread-safe. The relay whose tunnel publishing tenant/name is attached
    // there, as this relay last heard (an unexpired claim with an address:
    // the proxy hop's destination, cluster_hop.hpp), unless that relay was
    // found unreachable since; nullopt otherwise.
    struct remote_owner {
        std::string node;
        std::string address;  // its internal_listen, HOST:PORT or [V6]:PORT
    };
    [[nodiscard]] std::optional<remote_owner> owner(const std::string& tenant,
                                                    const std::string& name) const;
    // Thread-safe. Whether a request for tenant/name should wait here: a
    // lease of another relay holds it (docs/cluster.md "Leases across
    // relays") while its tunnel is not attached, or is attached to a relay
    // found unreachable (it died: the tunnel will come back somewhere).
    [[nodiscard]] bool awaited(const std::string& tenant, const std::string& name) const;
    // Thread-safe. Whether the other relays' claims have been read from Redis
    // since start (the first resync), or startup_sync_bound has passed
    // without it (Redis away: the relay decides from what it knows). Before
    // that a name published elsewhere looks offline here.
    static constexpr std::chrono::milliseconds startup_sync_bound{5'000};
    [[nodiscard]] bool synced() const noexcept {
        return synced_.load(std::memory_order_acquire) ||
               clock::now() >= started_ + startup_sync_bound;
    }
    // Thread-safe. Whether a lease of another relay (lease_route_id) holds a
    // name of `tenant`: a tunnel attaching here with that lease's ID takes it
    // over.
    [[nodiscard]] bool holds_lease(const std::string& tenant, const std::string& lease) const;
    // Thread-safe: a hop to `node` could not connect. Its claims no longer
    // name an owner (requests for its leased names wait) until it is heard
    // announcing a claim again.
    void unreachable(const std::string& node);
    // Thread-safe: `node` said tenant/name has no tunnel there (a hop's
    // answer: this relay's mirror was stale). Its claim no longer names an
    // owner (requests for a leased name wait) until a claim is heard again.
    void stale(const std::string& tenant, const std::string& name, const std::string& node);
    // Called (on the relay's io thread) when another relay announces a
    // claim of tenant/name: `attached`, its tunnel is attached there, so
    // requests waiting for it here can go (request_queue::open); else they
    // wait again. Set before start().
    using claim_listener = std::function<void(const std::string&, const std::string&, bool)>;
    void on_claim(claim_listener cb) { on_claim_ = std::move(cb); }

    // Thread-safe: this relay's tunnel published (or keeps) tenant/name.
    // `grace`: its lease's grace period (0: no lease); the claim outlives a
    // relay that dies by that much, so the lease keeps the name meanwhile.
    void claimed(const std::string& tenant, const std::string& name, const std::string& lease,
                 std::chrono::milliseconds grace = std::chrono::milliseconds(0));
    // Thread-safe: its tunnel dropped; the lease holds the name for `grace`.
    void held(const std::string& tenant, const std::string& name, const std::string& lease,
              std::chrono::milliseconds grace);
    // Thread-safe: the name is let go now.
    void released(const std::string& tenant, const std::string& name, const std::string& lease);

    // The lease value this relay records for a tunnel's names: its lease
    // (lease_route_id, the same on every relay) or, without one, the tunnel
    // itself (`<node>/tunnel/<id>`).
    [[nodiscard]] std::string lease_key(const std::string& lease_route, std::uint64_t tunnel) const;

    [[nodiscard]] const std::string& node() const noexcept { return node_; }
    // The relay's two Redis clients (commands; subscriptions), started and
    // stopped here and shared with its other cluster state (revocations,
    // rate limits).
    [[nodiscard]] const std::shared_ptr<cluster::redis_client>& commands() const noexcept {
        return commands_;
    }
    [[nodiscard]] const std::shared_ptr<cluster::redis_client>& subscriber() const noexcept {
        return subscriber_;
    }
    [[nodiscard]] std::uint64_t conflicts() const noexcept { return conflicts_; }
    // The client commands go through (started and stopped with this).
    [[nodiscard]] const std::shared_ptr<cluster::redis_client>& redis() const noexcept {
        return commands_;
    }

  private:
    using key = std::pair<std::string, std::string>;  // tenant, name
    struct local_claim {
        std::string lease;
        bool attached = true;
        clock::time_point until{};           // held: the end of its grace
        std::chrono::milliseconds grace{0};  // attached: how long the claim outlives us
    };
    struct remote_claim {
        std::string node;
        std::string lease;
        clock::time_point until{};
        std::string address{};      // the holder's internal_listen (empty: not announced)
        bool attached = false;      // its tunnel is attached there (false: held in grace)
        clock::time_point heard{};  // when this relay learned it
    };
    cluster_routes(asio::io_context& io, const cluster_config& config, std::string prefix);

    asio::awaitable<void> claim_one(key k, local_claim c);
    asio::awaitable<void> release_one(key k, std::string lease);
    asio::awaitable<void> refresh_loop();
    // After a (re)connection: the mirror from Redis; with `claim_again`
    // (the command client's), this relay's claims too.
    asio::awaitable<void> resync(bool claim_again);
    void announce(std::string message);
    void heard(const std::string& message);
    void note_remote(const key& k, remote_claim c);
    void note_remote_locked(const key& k, remote_claim c);  // mutex_ held

    asio::io_context& io_;
    std::string node_;
    std::string address_;
    std::string prefix_;
    std::shared_ptr<cluster::redis_client> commands_;
    std::shared_ptr<cluster::redis_client> subscriber_;
    std::shared_ptr<cluster::route_table> table_;
    asio::steady_timer refresh_timer_;
    bool stopped_ = false;

    mutable std::mutex mutex_;
    std::map<key, local_claim> local_;
    std::map<key, remote_claim> remote_;
    std::set<std::string> unreachable_;  // nodes a hop could not reach since last heard
    int resyncs_ = 0;                    // running now
    std::map<key, clock::time_point> released_while_resyncing_;
    claim_listener on_claim_;
    std::atomic<std::uint64_t> conflicts_{0};
    std::atomic<bool> synced_{false};
    clock::time_point started_ = clock::now();
};

}  // namespace tunnel::relay
