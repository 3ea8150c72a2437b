#include "relay/cluster_routes.hpp"

#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/log_text.hpp"
#include "core/spawn.hpp"

namespace tunnel::relay {

namespace {

std::vector<std::string> split_tabs(const std::string& s) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (out.size() < 8) {
        auto tab = s.find('\t', start);
        out.push_back(s.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
        if (tab == std::string::npos) break;
        start = tab + 1;
    }
    return out;
}

}  // namespace

std::shared_ptr<cluster_routes> cluster_routes::create(asio::io_context& io,
                                                       const cluster_config& config,
                                                       std::string prefix) {
    return std::shared_ptr<cluster_routes>(new cluster_routes(io, config, std::move(prefix)));
}

cluster_routes::cluster_routes(asio::io_context& io, const cluster_config& config,
                               std::string prefix)
    : io_(io),
      node_(config.node),
      address_(config.internal_address()),
      prefix_(std::move(prefix)),
      refresh_timer_(io) {
    cluster::redis_options o;
    o.name = "cluster redis";
    commands_ = cluster::redis_client::create(io.get_executor(), config.redis, o);
    o.name = "cluster redis (subscriber)";
    subscriber_ = cluster::redis_client::create(io.get_executor(), config.redis, o);
    table_ = std::make_shared<cluster::route_table>(commands_, node_, address_, prefix_);
}

std::string cluster_routes::lease_key(const std::string& lease_route, std::uint64_t tunnel) const {
    return !lease_route.empty() ? lease_route : fmt::format("{}/tunnel/{}", node_, tunnel);
}

void cluster_routes::start() {
    std::weak_ptr<cluster_routes> weak = shared_from_this();
    subscriber_->subscribe(prefix_ + "routes", [weak](const std::string&, const std::string& m) {
        if (auto s = weak.lock()) s->heard(m);
    });
    commands_->on_connected([weak] {
        if (auto s = weak.lock())
            core::spawn(
                s->io_, [s] { return s->resync(true); }, "cluster route resync");
    });
    // Announcements published while the subscriber was away are lost (pub/sub
    // keeps nothing): once subscribed again, the mirror is read again.
    subscriber_->on_connected([weak] {
        if (auto s = weak.lock())
            core::spawn(
                s->io_, [s] { return s->resync(false); }, "cluster route resync");
    });
    commands_->start();
    subscriber_->start();
    auto self = shared_from_this();
    core::spawn(
        io_, [self] { return self->refresh_loop(); }, "cluster route refresh");
}

void cluster_routes::stop() {
    asio::dispatch(io_, [self = shared_from_this()] {
        self->stopped_ = true;
        self->refresh_timer_.cancel();
        self->commands_->stop();
        self->subscriber_->stop();
    });
}

core::result<void> cluster_routes::check(const std::string& tenant, const std::string& name,
                                         const std::string& lease) const {
    std::lock_guard lock(mutex_);
    auto it = remote_.find(key{tenant, name});
    if (it == remote_.end() || it->second.lease == lease) return {};
    const auto left =
        std::chrono::duration_cast<std::chrono::seconds>(it->second.until - clock::now());
    if (left.count() < 0) return {};
    return core::fail(core::errc::denied,
                      fmt::format("{:?} of tenant {} is held by another tunnel's lease on relay {} "
                                  "(for up to {} s more unless renewed)",
                                  name, tenant, it->second.node, left.count() + 1));
}

std::optional<cluster_routes::remote_owner> cluster_routes::owner(const std::string& tenant,
                                                                  const std::string& name) const {
    std::lock_guard lock(mutex_);
    auto it = remote_.find(key{tenant, name});
    if (it == remote_.end() || !it->second.attached || it->second.address.empty() ||
        it->second.until <= clock::now() || unreachable_.count(it->second.node))
        return std::nullopt;
    return remote_owner{it->second.node, it->second.address};
}

bool cluster_routes::awaited(const std::string& tenant, const std::string& name) const {
    std::lock_guard lock(mutex_);
    auto it = remote_.find(key{tenant, name});
    if (it == remote_.end() || it->second.until <= clock::now() ||
        !it->second.lease.starts_with("lease/"))
        return false;
    return !it->second.attached || it->second.address.empty() ||
           unreachable_.count(it->second.node) > 0;
}

bool cluster_routes::holds_lease(const std::string& tenant, const std::string& lease) const {
    if (!lease.starts_with("lease/")) return false;
    std::lock_guard lock(mutex_);
    const auto now = clock::now();
    for (auto it = remote_.lower_bound(key{tenant, ""});
         it != remote_.end() && it->first.first == tenant; ++it)
        if (it->second.lease == lease && it->second.until > now) return true;
    return false;
}

void cluster_routes::unreachable(const std::string& node) {
    std::lock_guard lock(mutex_);
    if (unreachable_.size() < 1024) unreachable_.insert(node);
}

void cluster_routes::stale(const std::string& tenant, const std::string& name,
                           const std::string& node) {
    std::lock_guard lock(mutex_);
    if (auto it = remote_.find(key{tenant, name}); it != remote_.end() && it->second.node == node)
        it->second.attached = false;
}

void cluster_routes::claimed(const std::string& tenant, const std::string& name,
                             const std::string& lease, std::chrono::milliseconds grace) {
    key k{tenant, name};
    local_claim c{lease, true, {}, grace};
    {
        std::lock_guard lock(mutex_);
        local_[k] = c;
        // The claim of this node's life before a restart (resync) is this one now.
        if (auto it = remote_.find(k); it != remote_.end() && it->second.node == node_)
            remote_.erase(it);
    }
    auto self = shared_from_this();
    core::spawn(
        io_, [self, k, c] { return self->claim_one(k, c); }, "cluster route claim");
}

void cluster_routes::held(const std::string& tenant, const std::string& name,
                          const std::string& lease, std::chrono::milliseconds grace) {
    if (grace.count() <= 0) {
        released(tenant, name, lease);
        return;
    }
    key k{tenant, name};
    local_claim c{lease, false, clock::now() + grace};
    {
        std::lock_guard lock(mutex_);
        local_[k] = c;
    }
    auto self = shared_from_this();
    core::spawn(
        io_, [self, k, c] { return self->claim_one(k, c); }, "cluster route hold");
}

void cluster_routes::released(const std::string& tenant, const std::string& name,
                              const std::string& lease) {
    key k{tenant, name};
    {
        std::lock_guard lock(mutex_);
        if (auto it = local_.find(k); it != local_.end() && it->second.lease == lease)
            local_.erase(it);
    }
    auto self = shared_from_this();
    core::spawn(
        io_, [self, k, lease] { return self->release_one(k, lease); }, "cluster route release");
}

asio::awaitable<void> cluster_routes::claim_one(key k, local_claim c) {
    if (stopped_) co_return;
    // An attached tunnel's claim lasts past the next refresh by its lease's
    // grace: if this relay dies, the lease still holds the name that long.
    auto ttl = claim_ttl + c.grace;
    if (!c.attached) {
        ttl = std::chrono::duration_cast<std::chrono::milliseconds>(c.until - clock::now());
        if (ttl.count() <= 0) co_return;
    }
    auto op = table_->claim(k.first, k.second, c.lease, ttl, c.attached);
    auto r = co_await std::move(op);
    if (!r) {
        // Redis away: the route keeps serving here; resync claims it later.
        spdlog::debug("cluster: claim of {}/{} not recorded: {}", k.first, k.second,
                      r.error().message);
        co_return;
    }
    if (!r->claimed && r->holder.lease == c.lease) {
        // Our tunnel left, and its lease is attached on another relay now:
        // the name is theirs; this relay stops claiming it.
        spdlog::debug("cluster: {}/{} moved to relay {} with its lease", k.first, k.second,
                      core::log_text(r->holder.node, 64));
        {
            std::lock_guard lock(mutex_);
            if (auto it = local_.find(k);
                it != local_.end() && !it->second.attached && it->second.lease == c.lease)
                local_.erase(it);
        }
        note_remote(k, remote_claim{r->holder.node, c.lease, clock::now() + r->holder.expires_in,
                                    r->holder.address, true});
        co_return;
    }
    if (!r->claimed) {
        ++conflicts_;
        spdlog::warn(
            "cluster: {}/{} is held by relay {} under another lease; this relay's "
            "tunnel published it before hearing so (a conflict: callers reaching this "
            "relay still get this tunnel)",
            k.first, k.second, core::log_text(r->holder.node, 64));
        if (r->holder.node != node_)
            note_remote(k, remote_claim{r->holder.node, "", clock::now() + r->holder.expires_in,
                                        r->holder.address, r->holder.attached});
        co_return;
    }
    {
        // Ours now (a lease taken over from another relay): not theirs any more.
        std::lock_guard lock(mutex_);
        remote_.erase(k);
    }
    // The address and attached state follow the original six fields: a
    // relay that reads only those still understands the claim.
    announce(fmt::format("claim\t{}\t{}\t{}\t{}\t{}\t{}\t{}", node_, k.first, k.second, c.lease,
                         ttl.count(), address_, c.attached ? 1 : 0));
}

asio::awaitable<void> cluster_routes::release_one(key k, std::string lease) {
    if (stopped_) co_return;
    auto op = table_->release(k.first, k.second, lease);
    auto r = co_await std::move(op);
    if (!r) {
        spdlog::debug("cluster: release of {}/{} not recorded: {}", k.first, k.second,
                      r.error().message);
        co_return;
    }
    if (*r) announce(fmt::format("release\t{}\t{}\t{}\t{}", node_, k.first, k.second, lease));
}

void cluster_routes::announce(std::string message) {
    auto self = shared_from_this();
    core::spawn(
        io_,
        [self, message = std::move(message)]() -> asio::awaitable<void> {
            std::vector<std::string> publish{"PUBLISH", self->prefix_ + "routes", message};
            auto op = self->commands_->command(std::move(publish));
            (void)co_await std::move(op);
        },
        "cluster route announcement");
}

void cluster_routes::note_remote(const key& k, remote_claim c) {
    c.heard = clock::now();
    std::lock_guard lock(mutex_);
    note_remote_locked(k, std::move(c));
}

void cluster_routes::note_remote_locked(const key& k, remote_claim c) {
    if (remote_.size() >= max_mirror && !remote_.count(k)) {
        const auto now = clock::now();
        std::erase_if(remote_, [now](const auto& kv) { return kv.second.until <= now; });
        if (remote_.size() >= max_mirror) return;
    }
    remote_[k] = std::move(c);
}

void cluster_routes::heard(const std::string& message) {
    if (message.size() > 1024) return;
    auto f = split_tabs(message);
    if (f.size() < 5 || f[1] == node_) return;
    key k{f[2], f[3]};
    if (f[0] == "claim" && (f.size() == 6 || f.size() == 8)) {
        long long ttl = 0;
        try {
            ttl = std::stoll(f[5]);
        } catch (const std::exception&) {
            return;
        }
        if (ttl <= 0 || ttl > 24LL * 3600 * 1000) return;
        remote_claim c{f[1], f[4], clock::now() + std::chrono::milliseconds(ttl)};
        if (f.size() == 8 && f[6].size() <= 300) {  // address, attached (older relays: neither)
            c.address = f[6];
            c.attached = f[7] == "1";
        }
        const bool attached = c.attached && !c.address.empty();
        std::optional<local_claim> take_back;
        {
            std::lock_guard lock(mutex_);
            unreachable_.erase(c.node);  // it is alive: it announces
            if (auto it = local_.find(k); it != local_.end() && it->second.lease == c.lease) {
                if (!it->second.attached) {
                    // Our lease's names moved to that relay (the tunnel
                    // re-attached there): this relay no longer holds or
                    // refreshes them.
                    local_.erase(it);
                } else if (!c.attached) {
                    // The same lease without a tunnel there, and its tunnel
                    // here (a client moving between relays left that one):
                    // the names are this relay's, claimed back at once.
                    take_back = it->second;
                }
                // Both attached: a client attaching to a second relay before
                // it leaves this one; both keep claiming until one session
                // ends (either carries the names meanwhile).
            }
        }
        if (take_back) {
            auto self = shared_from_this();
            core::spawn(
                io_, [self, k, c = *take_back] { return self->claim_one(k, c); },
                "cluster route claim");
            return;
        }
        note_remote(k, std::move(c));
        if (on_claim_) on_claim_(k.first, k.second, attached);
    } else if (f[0] == "release") {
        std::lock_guard lock(mutex_);
        if (auto it = remote_.find(k); it != remote_.end() && it->second.node == f[1])
            remote_.erase(it);
        // A resync's read of Redis may predate it: the read does not bring it back.
        if (resyncs_ > 0 && released_while_resyncing_.size() < max_mirror)
            released_while_resyncing_[k] = clock::now();
    }
}

asio::awaitable<void> cluster_routes::resync(bool claim_again) {
    // 1. The other relays' claims, as Redis has them now.
    std::map<key, remote_claim> seen;
    std::map<key, remote_claim> own_before;
    std::string cursor = "0";
    const auto now = clock::now();
    {
        std::lock_guard lock(mutex_);
        ++resyncs_;
    }
    struct done_resyncing {
        cluster_routes& self;
        ~done_resyncing() {
            std::lock_guard lock(self.mutex_);
            if (--self.resyncs_ == 0) self.released_while_resyncing_.clear();
        }
    } done{*this};
    do {
        std::vector<std::string> scan{"SCAN", cursor, "MATCH", prefix_ + "route:*", "COUNT", "500"};
        auto op = commands_->command(std::move(scan));
        auto r = co_await std::move(op);
        if (!r || !r->is_array() || r->elements.size() != 2) co_return;  // next reconnect
        cursor = r->elements[0].text;
        for (const auto& name_reply : r->elements[1].elements) {
            const auto& full = name_reply.text;
            const auto slash = full.find('/');
            const auto start = prefix_.size() + 6;  // "route:"
            if (slash == std::string::npos || slash < start) continue;
            key k{full.substr(start, slash - start), full.substr(slash + 1)};
            auto look = table_->lookup(k.first, k.second);
            auto rec = co_await std::move(look);
            if (!rec || !*rec) continue;
            if ((*rec)->node == node_) {
                // This node's claim from before a restart (chaos.cluster: a
                // relay killed and restarted answered 503 for its own leased
                // names). Its lease still holds the name, with no tunnel
                // here: requests wait for the tunnel to come back, here or
                // elsewhere, and the tunnel may take its lease over (holds_lease).
                if ((*rec)->lease.starts_with("lease/"))
                    own_before[k] = remote_claim{
                        node_, (*rec)->lease, now + (*rec)->expires_in, std::string(), false, now};
                continue;
            }
            seen[k] = remote_claim{(*rec)->node,    (*rec)->lease,    now + (*rec)->expires_in,
                                   (*rec)->address, (*rec)->attached, now};
            if (seen.size() >= max_mirror) break;
        }
    } while (cursor != "0" && seen.size() < max_mirror && !stopped_);
    std::map<key, local_claim> mine;
    {
        std::lock_guard lock(mutex_);
        // Merged into the mirror, not replacing it. A claim this relay knows
        // that Redis lacks stays until its own expiry: a restarted Redis is
        // empty until each owner reconnects and claims again, and its routes
        // keep serving meanwhile (a claim that was released while this relay
        // was not listening goes at its expiry; its owner answers the hop
        // 503 until then). What was heard since the read began is newer than
        // the read: a claim stays, a released one is not brought back.
        for (auto& [k, c] : own_before)
            if (!local_.count(k)) seen.emplace(k, std::move(c));
        for (auto& [k, c] : seen) {
            if (auto it = remote_.find(k); it != remote_.end() && it->second.heard >= now) continue;
            if (auto it = released_while_resyncing_.find(k);
                it != released_while_resyncing_.end() && it->second >= now)
                continue;
            note_remote_locked(k, std::move(c));
        }
        const auto at = clock::now();
        std::erase_if(remote_, [at](const auto& kv) { return kv.second.until <= at; });
        synced_.store(true, std::memory_order_release);
        std::erase_if(local_, [now](const auto& kv) {
            return !kv.second.attached && kv.second.until <= now;
        });
        if (claim_again) mine = local_;
    }
    // 2. This relay's claims again (Redis may have restarted empty).
    for (const auto& [k, c] : mine) {
        auto op = claim_one(k, c);
        co_await std::move(op);
    }
    if (!mine.empty())
        spdlog::info("cluster: claimed this relay's {} routes again in Redis", mine.size());
}

asio::awaitable<void> cluster_routes::refresh_loop() {
    auto self = shared_from_this();
    while (!stopped_) {
        refresh_timer_.expires_after(refresh_every);
        boost::system::error_code ec;
        co_await refresh_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        if (stopped_) break;
        std::map<key, local_claim> mine;
        {
            std::lock_guard lock(mutex_);
            const auto now = clock::now();
            std::erase_if(local_, [now](const auto& kv) {
                return !kv.second.attached && kv.second.until <= now;
            });
            for (const auto& [k, c] : local_)
                if (c.attached) mine.emplace(k, c);
        }
        if (!commands_->connected()) continue;  // resync claims them when Redis is back
        for (const auto& [k, c] : mine) {
            auto op = claim_one(k, c);
            co_await std::move(op);
        }
    }
}

}  // namespace tunnel::relay
