#include "pool/session_pool.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace tunnel::pool {

struct session_pool::entry {
    std::string destination;
    std::shared_ptr<ssh::session> session;
    core::clock::time_point created;
    core::clock::time_point last_used;
    std::size_t channels = 0;
    std::size_t max_channels = 0;
    bool broken = false;
};

core::result<void> validate(const pool_limits& l) {
    if (l.max_sessions_per_destination == 0)
        return core::fail(core::errc::invalid_argument,
                          "pool.max_sessions_per_destination: must be > 0");
    if (l.max_sessions_total < l.max_sessions_per_destination)
        return core::fail(core::errc::invalid_argument,
                          "pool.max_sessions_total: must be >= max_sessions_per_destination");
    if (l.max_channels_per_session == 0)
        return core::fail(core::errc::invalid_argument,
                          "pool.max_channels_per_session: must be > 0");
    if (l.idle_timeout.count() <= 0 || l.max_lifetime.count() <= 0)
        return core::fail(core::errc::invalid_argument,
                          "pool.idle_timeout/max_lifetime: must be > 0");
    return {};
}

session_pool::lease::lease(session_pool* pool, std::shared_ptr<entry> e, bool reused)
    : pool_(pool), entry_(std::move(e)), reused_(reused) {}

session_pool::lease::~lease() {
    if (pool_ && entry_) pool_->release(*entry_);
}

const std::shared_ptr<ssh::session>& session_pool::lease::session() const {
    return entry_->session;
}

void session_pool::lease::mark_full() {
    entry_->max_channels = std::max<std::size_t>(1, entry_->channels - 1);
}

void session_pool::lease::discard() {
    entry_->broken = true;
}

session_pool::session_pool(asio::any_io_executor executor, pool_limits limits,
                           const core::clock& clock, connector connect, liveness_check alive)
    : executor_(executor),
      limits_(limits),
      clock_(clock),
      connect_(connect ? std::move(connect)
                       : connector([](asio::any_io_executor ex, ssh::connect_options o) {
                             return ssh::session::connect(ex, std::move(o));
                         })),
      alive_(alive ? std::move(alive) : liveness_check([](const std::shared_ptr<ssh::session>& s) {
          return s->alive();
      })),
      slot_freed_(executor) {
    slot_freed_.expires_at(asio::steady_timer::time_point::max());
}

session_pool::~session_pool() = default;

void session_pool::release(entry& e) {
    if (e.channels > 0) --e.channels;
    e.last_used = clock_.now();
    slot_freed_.cancel();  // wake acquirers waiting for a slot
}

std::size_t session_pool::session_count() const noexcept {
    return entries_.size() + connecting_;
}

std::size_t session_pool::session_count(const std::string& destination) const {
    return static_cast<std::size_t>(std::count_if(
        entries_.begin(), entries_.end(), [&](auto& e) { return e->destination == destination; }));
}

void session_pool::evict_expired() {
    const auto now = clock_.now();
    entries_.remove_if([&](const std::shared_ptr<entry>& e) {
        if (e->channels > 0) return false;
        bool expired = e->broken || now - e->last_used >= limits_.idle_timeout ||
                       now - e->created >= limits_.max_lifetime;
        if (expired) spdlog::debug("pool: closing session to {}", e->destination);
        return expired;
    });
}

void session_pool::close() {
    entries_.remove_if([](const std::shared_ptr<entry>& e) {
        if (e->channels > 0) {
            e->broken = true;
            return false;
        }
        spdlog::debug("pool: closing session to {}", e->destination);
        if (e->session) e->session->disconnect();
        return true;
    });
}

asio::awaitable<core::result<session_pool::lease>> session_pool::acquire(
    const ssh::connect_options& opts) {
    const std::string key = opts.destination();
    const auto started = ssh::clock_type::now();
    const auto deadline = started + opts.connect_timeout;
    bool waited_for_connect = false;
    for (;;) {
        if (waited_for_connect) {
            // The connect we waited for failed: that is our answer too.
            if (auto f = last_failure_.find(key);
                f != last_failure_.end() && f->second.at >= started)
                co_return tl::unexpected(f->second.error);
        }
        evict_expired();
        const auto now = clock_.now();
        std::size_t for_key = 0;
        for (auto& e : entries_) {
            if (e->destination != key) continue;
            ++for_key;
            if (e->broken || now - e->created >= limits_.max_lifetime) continue;
            std::size_t cap = e->max_channels ? e->max_channels : limits_.max_channels_per_session;
            if (e->channels >= cap) continue;
            if (e->channels == 0 && !alive_(e->session)) {  // liveness before reuse
                e->broken = true;
                continue;
            }
            ++e->channels;
            co_return lease(this, e, true);
        }
        const std::size_t in_flight = connecting_to_[key];
        waited_for_connect = in_flight > 0;
        if (in_flight == 0 && for_key < limits_.max_sessions_per_destination &&
            session_count() < limits_.max_sessions_total) {
            ++connecting_;
            ++connecting_to_[key];
            auto s = co_await connect_(executor_, opts);
            --connecting_;
            --connecting_to_[key];
            slot_freed_.cancel();  // wake the callers waiting for this connect
            if (!s) {
                last_failure_.insert_or_assign(key,
                                               connect_failure{s.error(), ssh::clock_type::now()});
                co_return tl::unexpected(s.error());
            }
            auto e = std::make_shared<entry>();
            e->destination = key;
            e->session = std::move(*s);
            e->created = e->last_used = clock_.now();
            e->channels = 1;
            entries_.push_back(e);
            co_return lease(this, e, false);
        }
        if (ssh::clock_type::now() >= deadline)
            co_return core::fail(core::errc::resource_exhausted,
                                 fmt::format("no free session to {} within the connect timeout "
                                             "({} sessions × {} channels are busy)",
                                             key, limits_.max_sessions_per_destination,
                                             limits_.max_channels_per_session));
        // Wait until a lease is returned or the deadline passes.
        asio::steady_timer guard(executor_);
        guard.expires_at(deadline);
        guard.async_wait([this](boost::system::error_code ec) {
            if (!ec) slot_freed_.cancel();
        });
        boost::system::error_code ec;
        co_await slot_freed_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        guard.cancel();
    }
}

}  // namespace tunnel::pool
