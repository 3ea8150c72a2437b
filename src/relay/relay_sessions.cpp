#include "relay/relay_sessions.hpp"

#include <algorithm>
#include <mutex>

#include <spdlog/spdlog.h>

#include "core/duration.hpp"
#include "core/log_text.hpp"
#include "core/spawn.hpp"
#include "relay/token_renewal.hpp"

namespace tunnel::relay {

namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

}  // namespace

relay_sessions::relay_sessions(asio::any_io_executor executor, relay_sessions_options options)
    : executor_(executor), options_(std::move(options)), ended_(executor), timer_(executor) {}

core::result<std::shared_ptr<relay_sessions>> relay_sessions::create(
    asio::any_io_executor executor, relay_sessions_options options) {
    auto s = std::make_shared<relay_sessions>(executor, std::move(options));
    auto first = s->make(std::nullopt);
    if (!first) return tl::unexpected(first.error());
    s->current_ = std::move(*first);
    s->current_->in_charge = true;
    return s;
}

core::result<std::shared_ptr<relay_sessions::slot>> relay_sessions::make(
    std::optional<std::size_t> pin, std::string lease_id) {
    auto s = std::make_shared<slot>();
    relay_client_options o = options_.client;  // a copy: one per session
    s->lease = std::make_shared<transport::ws_lease>();
    s->lease->id = std::move(lease_id);
    o.ws.lease = s->lease;
    o.failover = nullptr;
    if (options_.relays.size() >= 2) {
        failover_options fo;
        fo.on_switch = options_.on_switch;
        s->failover = std::make_shared<relay_failover>(options_.relays, std::move(fo));
        s->failover->pin(pin);
        o.failover = s->failover;
    }
    auto so = relay_supervisor_options(std::move(o));
    if (!so) return tl::unexpected(so.error());
    auto sup = forward::supervisor::create(executor_, std::move(*so));
    if (!sup) return tl::unexpected(sup.error());
    s->sup = std::move(*sup);
    return s;
}

std::shared_ptr<forward::supervisor> relay_sessions::current() const {
    return current_->sup;
}

void relay_sessions::stop(bool release) {
    stopped_ = true;
    timer_.cancel();
    for (const auto& s : {current_, trial_}) {
        if (!s) continue;
        if (release) s->lease->release_now();
        s->sup->stop();
    }
}

asio::awaitable<void> relay_sessions::sleep(milliseconds d) {
    timer_.expires_after(d);
    boost::system::error_code ec;
    co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

asio::awaitable<void> relay_sessions::watch(std::shared_ptr<slot> s) {
    auto outcome = co_await s->sup->run();
    s->outcome = std::move(outcome);
    s->ended = true;
    if (s->in_charge) ended_.notify();
}

asio::awaitable<core::result<void>> relay_sessions::run() {
    auto self = shared_from_this();
    core::spawn(executor_, watch(current_), "relay session");
    if (options_.relays.size() >= 2 && options_.client.reconnect)
        core::spawn(executor_, return_to_first(), "return to the preferred relay");
    const auto forever = std::chrono::steady_clock::time_point::max();
    while (!current_->ended) (void)co_await ended_.wait(forever);
    co_return current_->outcome ? *current_->outcome : core::result<void>{};
}

bool relay_sessions::shares_lease(slot& a, slot& b) {
    std::scoped_lock lock(a.lease->mutex, b.lease->mutex);
    return !a.lease->id.empty() && a.lease->id == b.lease->id;
}

void relay_sessions::abandon_trial(slot& cur) {
    const bool attached = trial_->failover && trial_->failover->current().has_value();
    // Released only with a lease of its own (a relay outside the cluster
    // gave it one): a lease it shares with the session in use holds that
    // session's names too, which a release would drop cluster-wide.
    const bool shared = shares_lease(*trial_, cur);
    if (!shared) trial_->lease->release_now();
    trial_->sup->stop();
    trial_.reset();
    // Once it attached, the names went over to the first relay with the
    // lease (and the relay in use stopped claiming them): the session in use
    // attaches again, and its relay claims them back at once.
    if (attached && shared && !stopped_)
        cur.sup->reconnect_now(
            "the names went to the preferred relay, which was lost before "
            "they settled there: attaching here again to claim them back");
}

asio::awaitable<void> relay_sessions::return_to_first() {
    auto self = shared_from_this();
    const auto& first = options_.relays.front();
    auto interval = options_.probe_interval;
    bool said = false;  // the first relay's state was logged (once per stay elsewhere)
    while (!stopped_) {
        co_await sleep(interval);
        if (stopped_) break;
        auto cur = current_;
        const auto at = cur->failover->current();
        if (!at || *at == 0) {
            interval = options_.probe_interval;
            said = false;
            continue;
        }
        if (!cur->sup->snapshot().healthy()) continue;  // reconnecting: not now
        auto answer = co_await probe_relay(first, options_.probe_ws, options_.probe_timeout);
        if (stopped_) break;
        if (!answer) {
            if (!said)
                spdlog::info("the preferred relay {} does not answer yet ({}); probing it every {}",
                             describe_relay(first), core::log_text(answer.error().message, 200),
                             core::format_duration(interval));
            said = true;
            continue;
        }
        // It answers: a second session there, beside the one in use, with
        // the same lease: relays of one cluster share leases, so the names
        // move over with it (docs/cluster.md "Leases across relays"); a
        // relay that does not know the ID gives the session a new one.
        std::string lease_id;
        {
            std::lock_guard lock(cur->lease->mutex);
            lease_id = cur->lease->id;
        }
        auto trial = make(0, std::move(lease_id));
        if (!trial) {
            spdlog::warn("cannot attach to the preferred relay again: {}", trial.error().message);
            continue;
        }
        trial_ = *trial;
        core::spawn(executor_, watch(trial_), "relay session (preferred relay)");
        const auto until = std::chrono::steady_clock::now() + options_.publish_limit;
        while (!stopped_ && !trial_->ended && !trial_->sup->snapshot().healthy() &&
               std::chrono::steady_clock::now() < until)
            co_await sleep(20ms);
        if (stopped_) break;
        if (trial_->ended || !trial_->sup->snapshot().healthy()) {
            const auto why = trial_->sup->snapshot().last_error;
            interval = std::min<milliseconds>(interval * 2, milliseconds(300'000));
            spdlog::warn(
                "the preferred relay {} answers, but the names did not come up there within {}{}; "
                "staying on {}, trying again in {}",
                describe_relay(first), core::format_duration(options_.publish_limit),
                why.empty() ? std::string() : " (" + core::log_text(why, 200) + ")",
                describe_relay(options_.relays[*at]), core::format_duration(interval));
            abandon_trial(*cur);
            continue;
        }
        // Both relays carry the names now: leave the other one at a quiet
        // moment (no request cut), releasing the names there.
        (void)co_await quiet_moment(timer_, *cur->sup, options_.quiet_limit, stopped_);
        if (stopped_) break;
        if (trial_->ended || !trial_->sup->snapshot().healthy()) {
            // The first relay went away again meanwhile: the session there is
            // pinned to it (and may be in a long backoff), so it is not the
            // one to keep; the names stay where they are.
            interval = std::min<milliseconds>(interval * 2, milliseconds(300'000));
            spdlog::warn(
                "the preferred relay {} was lost again before the names moved there; "
                "staying on {}, trying again in {}",
                describe_relay(first), describe_relay(options_.relays[*at]),
                core::format_duration(interval));
            abandon_trial(*cur);
            continue;
        }
        auto next = std::move(trial_);
        next->failover->pin(std::nullopt);
        next->in_charge = true;
        cur->in_charge = false;
        current_ = next;
        if (options_.on_new_session) options_.on_new_session(next->sup);
        // The session left behind ends. Its lease is released only when it
        // is its own (a relay outside the cluster): a lease shared with the
        // new session carries the names now, on whichever relay claimed
        // them last, and that relay's claim would go with a release.
        if (!shares_lease(*next, *cur)) cur->lease->release_now();
        cur->sup->stop();
        if (options_.on_switch) {
            relay_switch ev;
            ev.from = *at;
            ev.to = 0;
            ev.from_url = describe_relay(options_.relays[*at]);
            ev.to_url = describe_relay(first);
            ev.reason = "preferred";
            options_.on_switch(ev);
        }
        interval = options_.probe_interval;
        said = false;
    }
}

}  // namespace tunnel::relay
