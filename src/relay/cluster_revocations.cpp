#include "relay/cluster_revocations.hpp"

#include <atomic>
#include <chrono>
#include <set>

#include <spdlog/spdlog.h>

#include "cluster/revocation_list.hpp"
#include "core/log_text.hpp"
#include "core/spawn.hpp"

namespace tunnel::relay {

namespace {

using sys_clock = std::chrono::system_clock;

// How long a revocation heard on the channel is kept before Redis said
// until when (then extended to that); as cluster::revocation_list does.
constexpr auto heard_keep = std::chrono::hours(24);

}  // namespace

struct cluster_revocations::shared : std::enable_shared_from_this<shared> {
    shared(asio::io_context& io_context, std::unique_ptr<revocation_list> local_list,
           std::shared_ptr<cluster::redis_client> commands_client,
           std::shared_ptr<cluster::redis_client> subscriber, std::string prefix)
        : io(io_context),
          local(std::move(local_list)),
          commands(commands_client),
          redis(std::move(commands_client), std::move(subscriber), std::move(prefix)) {}

    asio::io_context& io;
    std::unique_ptr<revocation_list> local;
    std::shared_ptr<cluster::redis_client> commands;
    cluster::revocation_list redis;
    // Resynchronisations: one at a time; a reconnection during one runs
    // another after it.
    bool resyncing = false;  // on io
    bool resync_again = false;

    // Writes and publishes one revocation (add, resync).
    asio::awaitable<core::result<void>> write(revoked_token e) {
        auto op = redis.revoke(e.jti, e.expires);
        co_return co_await std::move(op);
    }

    asio::awaitable<void> push(revoked_token e) {
        auto op = write(e);
        if (auto r = co_await std::move(op); !r)
            spdlog::warn(
                "cluster: revocation of {} not written to Redis yet: {}; this relay refuses the "
                "token now, the others once Redis is back (it is written again then)",
                core::log_text(e.jti, 64), r.error().message);
    }

    // A jti published by a relay (this one included).
    void heard(const std::string& jti) {
        if (local->revoked(jti) || !check_jti(jti).empty()) return;
        const auto now = sys_clock::now();
        auto added = local->add(revoked_token{jti, now + heard_keep, now});
        if (!added) {
            spdlog::error("cluster: revocation of {} heard but not kept: {}",
                          core::log_text(jti, 64), added.error().message);
            return;
        }
        spdlog::warn("cluster: token {} was revoked on another relay; tunnels using it here closed",
                     core::log_text(jti, 64));
        core::spawn(
            io, [self = shared_from_this(), jti] { return self->extend(jti); },
            "cluster revocation expiry");
    }

    // Keeps a heard revocation as long as Redis does.
    asio::awaitable<void> extend(std::string jti) {
        auto op = redis.expiry(jti);
        auto until = co_await std::move(op);
        if (!until || !*until || **until <= sys_clock::now()) co_return;
        (void)local->add(revoked_token{jti, **until, sys_clock::now()});
    }

    asio::awaitable<void> resync() {
        if (resyncing) {
            resync_again = true;
            co_return;
        }
        resyncing = true;
        do {
            resync_again = false;
            auto op = resync_once();
            co_await std::move(op);
        } while (resync_again);
        resyncing = false;
    }

    asio::awaitable<void> resync_once() {
        auto op = redis.load();
        auto loaded = co_await std::move(op);
        if (!loaded) {
            spdlog::debug("cluster: revocations not loaded from Redis: {}", loaded.error().message);
            co_return;  // the next (re)connection tries again
        }
        const auto now = sys_clock::now();
        std::set<std::string, std::less<>> in_redis;
        unsigned learned = 0;
        for (const auto& [jti, until] : *loaded) {
            in_redis.insert(jti);
            if (local->revoked(jti) || until <= now || !check_jti(jti).empty()) continue;
            if (auto added = local->add(revoked_token{jti, until, now}); added && *added) ++learned;
        }
        unsigned written = 0;
        for (const auto& e : local->list()) {
            if (in_redis.contains(e.jti) || e.expires <= now) continue;
            auto w = write(e);
            if (auto r = co_await std::move(w); !r) {
                spdlog::debug("cluster: revocations not written back: {}", r.error().message);
                co_return;
            }
            ++written;
        }
        if (learned > 0 || written > 0)
            spdlog::info(
                "cluster: revocations in step with Redis: {} learned from it, {} written to it "
                "({} in Redis)",
                learned, written, in_redis.size() + written);
    }
};

std::unique_ptr<cluster_revocations> cluster_revocations::create(
    asio::io_context& io, std::unique_ptr<revocation_list> local,
    std::shared_ptr<cluster::redis_client> commands,
    std::shared_ptr<cluster::redis_client> subscriber, std::string prefix) {
    auto s =
        std::make_shared<shared>(io, std::move(local), commands, subscriber, std::move(prefix));
    std::weak_ptr<shared> weak = s;
    subscriber->subscribe(s->redis.channel(), [weak](const std::string&, const std::string& jti) {
        if (auto self = weak.lock()) self->heard(jti);
    });
    auto on_connected = [weak] {
        if (auto self = weak.lock())
            core::spawn(
                self->io, [self] { return self->resync(); }, "cluster revocation resync");
    };
    // Either connection may have missed something: the subscriber messages
    // published while it was away, the command client nothing, but Redis
    // may have restarted empty.
    commands->on_connected(on_connected);
    subscriber->on_connected(on_connected);
    return std::unique_ptr<cluster_revocations>(new cluster_revocations(std::move(s)));
}

cluster_revocations::~cluster_revocations() = default;

core::result<bool> cluster_revocations::add(revoked_token entry) {
    auto added = shared_->local->add(entry);
    if (!added) return added;
    core::spawn(
        shared_->io, [s = shared_, entry] { return s->push(entry); }, "cluster revocation write");
    return added;
}

bool cluster_revocations::revoked(std::string_view jti) const {
    return shared_->local->revoked(jti);
}

std::vector<revoked_token> cluster_revocations::list() const {
    return shared_->local->list();
}

void cluster_revocations::subscribe(listener fn) {
    shared_->local->subscribe(std::move(fn));
}

std::string cluster_revocations::pending_reason() const {
    if (shared_->commands->connected()) return {};
    return "the cluster's Redis is unreachable: this relay refuses the token now, the other "
           "relays once Redis is back (the revocation is written to it then)";
}

}  // namespace tunnel::relay
