#include "link/link.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

#include "core/duration.hpp"
#include "core/log_text.hpp"
#include "core/spawn.hpp"
#include "link/health_score.hpp"
#include "link/link_lane.hpp"
#include "ssh/channel.hpp"

namespace tunnel::link {

using namespace std::chrono_literals;

std::string_view to_string(link_state s) noexcept {
    switch (s) {
        case link_state::starting:
            return "starting";
        case link_state::up:
            return "up";
        case link_state::degraded:
            return "degraded";
        case link_state::down:
            return "down";
        case link_state::stopped:
            return "stopped";
        case link_state::unsupported:
            return "unsupported";
    }
    return "?";
}

std::string_view to_string(lane_state s) noexcept {
    switch (s) {
        case lane_state::idle:
            return "idle";
        case lane_state::connecting:
            return "connecting";
        case lane_state::up:
            return "up";
        case lane_state::down:
            return "down";
        case lane_state::unsupported:
            return "unsupported";
    }
    return "?";
}

core::result<std::shared_ptr<link>> link::create(asio::any_io_executor executor, link_config config,
                                                 std::vector<resolved_transport> transports,
                                                 event_sink events) {
    auto l = std::make_shared<link>(executor, std::move(config), std::move(transports),
                                    std::move(events));
    forward::local_forward_options lo;
    lo.outage_wait = l->config_.switch_wait;
    for (std::size_t i = 0; i < l->forward_stats_.size(); ++i) {
        auto& fs = l->forward_stats_[i];
        if (fs->spec.kind == forward::forward_kind::remote) {
            l->remotes_[i] = std::make_unique<forward::remote_forward>(fs);
            continue;
        }
        auto opened = forward::local_forward::open(executor, fs, *l, lo);
        if (!opened) {
            for (auto& o : l->locals_)
                if (o) o->stop();
            return core::fail(opened.error().code,
                              fmt::format("link {}: {}", l->name(), opened.error().message));
        }
        l->locals_[i] = *opened;
    }
    return l;
}

link::link(asio::any_io_executor executor, link_config config,
           std::vector<resolved_transport> transports, event_sink events)
    : executor_(executor), config_(std::move(config)), events_(std::move(events)) {
    // Reconnects back off from 250 ms to the keepalive interval (at least 1 s).
    const core::backoff_policy bp{250ms, std::max<std::chrono::milliseconds>(config_.keepalive, 1s),
                                  0};
    for (auto& t : transports) {
        if (destination_.empty() && t.options && t.config.type != transport_type::relay)
            destination_ = t.options->destination();
        lanes_.push_back(std::make_unique<lane>(executor, std::move(t), bp));
    }
    for (const auto& spec : config_.forwards) {
        auto fs = std::make_shared<forward::forward_stats>();
        fs->spec = spec;
        forward_stats_.push_back(std::move(fs));
    }
    locals_.resize(forward_stats_.size());
    // A recovery step per `after_failures` failed connects of each transport.
    const auto runnable = std::count_if(lanes_.begin(), lanes_.end(),
                                        [](auto& l) { return l->transport.options.has_value(); });
    recovery_.set_per_step(config_.after_failures * static_cast<int>(std::max<long>(runnable, 1)));
    remotes_.resize(forward_stats_.size());
}

health_policy link::policy() const {
    return {config_.after_failures, config_.rtt_above, config_.return_after};
}

void link::emit(nlohmann::json e) const {
    e["link"] = config_.name;
    if (events_) events_(std::move(e));
}

void link::start() {
    if (started_ || stopped_) return;
    started_ = true;
    for (auto& l : locals_)
        if (l) l->start();
    auto self = shared_from_this();
    for (std::size_t i = 0; i < lanes_.size(); ++i)
        core::spawn(
            executor_, [self, i] { return self->run_lane(i); },
            fmt::format("link {} transport {}", config_.name, i));
}

void link::stop() {
    if (stopped_) return;
    stopped_ = true;
    for (auto& l : locals_)
        if (l) l->stop();
    for (auto& l : lanes_) {
        if (l->session) l->session->abort();
        l->session.reset();
        l->health.on_lost();
        l->timer.cancel();
    }
    active_.reset();
    wake_acquirers();
    emit({{"type", "link_stopped"}});
}

void link::restart() {
    if (stopped_) return;
    emit({{"type", "restart"}});
    for (auto& l : lanes_) {
        l->kick = true;
        if (l->session) drop(*l, "restart requested");
        l->retry.reset();
        l->timer.cancel();
    }
}

core::result<std::size_t> link::prefer(std::string_view name) {
    std::optional<std::size_t> found;
    for (std::size_t i = 0; i < lanes_.size(); ++i)
        if (lanes_[i]->transport.config.name == name || std::to_string(i) == name) found = i;
    if (!found) {
        std::vector<std::string> names;
        for (const auto& l : lanes_) names.push_back(l->transport.config.name);
        return core::fail(
            core::errc::invalid_argument,
            fmt::format("link {} has no transport \"{}\" (it has: {}; or give an "
                        "index from 0)",
                        config_.name, core::log_text(name, 64), fmt::join(names, ", ")));
    }
    if (!lanes_[*found]->transport.options)
        return core::fail(core::errc::invalid_argument,
                          fmt::format("link {}: transport {} is not supported: {}", config_.name,
                                      lanes_[*found]->transport.config.name,
                                      lanes_[*found]->transport.unsupported));
    preferred_ = *found;
    emit({{"type", "preferred"},
          {"transport", {{"index", *found}, {"name", lanes_[*found]->transport.config.name}}}});
    // A manual switch does not wait for return_after: a healthy lane takes over now.
    if (lanes_[*found]->health.healthy(policy()) && active_ != *found)
        switch_to(found, "tunnel switch");
    for (auto& l : lanes_)
        if (l->state == lane_state::idle) l->timer.cancel();
    return *found;
}

bool link::wanted(std::size_t index) const {
    if (stopped_) return false;
    if (config_.start == start_policy::parallel || !active_) return true;
    if (index == *active_ || index == preferred_) return true;
    const auto ranked = rank_transports(lanes_.size(), preferred_);
    for (auto i : ranked) {
        if (i == index) return true;  // ranked above the active one: needed to return
        if (i == *active_) return false;
    }
    return false;
}

asio::awaitable<void> link::sleep(lane& l, std::chrono::milliseconds d) {
    l.timer.expires_after(d);
    boost::system::error_code ec;
    co_await l.timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

void link::drop(lane& l, const std::string& why) {
    if (!l.session) return;
    auto s = std::move(l.session);
    l.session.reset();
    l.health.on_lost();
    l.state = lane_state::down;
    l.last_error = why;
    s->abort();
    spdlog::warn("link {}: transport {} dropped: {}", config_.name, l.transport.config.name,
                 core::log_text(why, 200));
    emit({{"type", "transport_down"},
          {"transport", l.transport.config.name},
          {"error", core::log_text(why, 200)}});
    l.timer.cancel();
    reselect(fmt::format("transport {} dropped: {}", l.transport.config.name, why));
}

void link::mark_remotes_down() {
    // Each -R is asked for again on the new session.
    for (std::size_t i = 0; i < remotes_.size(); ++i)
        if (remotes_[i]) forward_stats_[i]->state = forward::forward_state::down;
}

void link::wake_acquirers() {
    for (auto* t : acquirers_) t->cancel();
}

void link::reselect(const std::string& reason) {
    if (stopped_) return;
    std::vector<transport_health> h;
    for (const auto& l : lanes_) h.push_back(l->health);
    const auto next =
        choose_transport(h, rank_transports(lanes_.size(), preferred_), active_, policy());
    if (next == active_) return;
    switch_to(next, reason);
}

void link::switch_to(std::optional<std::size_t> next, const std::string& reason) {
    const auto prev = active_;
    active_ = next;
    if (prev && next) ++switches_;
    if (next) recovery_.on_recovered();
    nlohmann::json e{{"type", "switch"},
                     {"from", prev ? nlohmann::json(*prev) : nlohmann::json()},
                     {"to", next ? nlohmann::json(*next) : nlohmann::json()},
                     {"reason", core::log_text(reason, 200)}};
    if (next) e["transport"] = lanes_[*next]->transport.config.name;
    emit(std::move(e));
    if (next) {
        spdlog::info("link {}: now over transport {} ({})", config_.name,
                     lanes_[*next]->transport.config.name, core::log_text(reason, 200));
        for (std::size_t i = 0; i < locals_.size(); ++i)
            if (locals_[i]) forward_stats_[i]->state = forward::forward_state::up;
        mark_remotes_down();
        auto s = lanes_[*next]->session;
        core::spawn(
            executor_, [self = shared_from_this(), s] { return self->request_remotes(s); },
            "link -R on a new transport");
    } else {
        spdlog::warn("link {}: no transport is up ({})", config_.name, core::log_text(reason, 200));
        for (auto& f : forward_stats_) f->state = forward::forward_state::down;
    }
    // The server keeps a -R listening for the old session: free it.
    if (prev && lanes_[*prev]->session &&
        std::any_of(remotes_.begin(), remotes_.end(), [](auto& r) { return r != nullptr; }))
        drop(*lanes_[*prev], "switched away; its -R listeners are moved");
    wake_acquirers();
    for (auto& l : lanes_)
        if (l->state == lane_state::idle) l->timer.cancel();
}

asio::awaitable<std::shared_ptr<ssh::session>> link::acquire(ssh::time_point deadline) {
    auto self = shared_from_this();
    while (!stopped_) {
        const auto now = ssh::clock_type::now();
        if (active_) {
            auto& l = *lanes_[*active_];
            // A session with a failed probe may be stalling: wait for the
            // verdict (a good probe or a switch) rather than open on it.
            if (l.session && (l.health.clean() || now >= deadline)) co_return l.session;
        }
        if (now >= deadline) co_return nullptr;
        asio::steady_timer t(executor_);
        t.expires_at(deadline);
        acquirers_.push_back(&t);
        boost::system::error_code ec;
        co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        std::erase(acquirers_, &t);
    }
    co_return nullptr;
}

asio::awaitable<std::optional<std::chrono::microseconds>> link::probe(
    std::shared_ptr<ssh::session> s) {
    const auto start = ssh::clock_type::now();
    auto ch = co_await ssh::channel::open_session(s, start + config_.probe_timeout());
    // A refusal is an answer too: a relay (which opens no session
    // channels) or a server at MaxSessions is alive, and the round trip is
    // the same.
    if (!ch && !(ch.error().code == core::errc::channel_failed && s->alive()))
        co_return std::nullopt;
    const auto rtt =
        std::chrono::duration_cast<std::chrono::microseconds>(ssh::clock_type::now() - start);
    if (ch) ch->close();
    co_return rtt;
}

asio::awaitable<void> link::drive(std::size_t index, std::shared_ptr<ssh::session> s) {
    auto self = shared_from_this();
    auto& l = *lanes_[index];
    while (!stopped_ && l.session == s) {
        auto w = co_await s->wait(ssh::time_point::max());
        int port = 0;
        while (l.session == s) {
            auto ch = ssh::channel::accept_forwarded(s, port);
            if (!ch) break;
            bool taken = false;
            if (active_ == index)
                for (auto& rf : remotes_)
                    if (rf && rf->owns(port)) {
                        rf->carry(std::move(*ch), 15s);
                        taken = true;
                        break;
                    }
            if (!taken) ch->close();
        }
        if (!w && w.error().code != core::errc::timeout) {
            if (l.session == s) drop(l, w.error().message);
            break;
        }
    }
}

asio::awaitable<void> link::request_remotes(std::shared_ptr<ssh::session> s) {
    auto self = shared_from_this();
    const auto generation = ++remote_generation_;
    auto current = [&] {
        return !stopped_ && generation == remote_generation_ && active_ &&
               lanes_[*active_]->session == s;
    };
    asio::steady_timer pause(executor_);
    for (;;) {
        bool all = true;
        for (std::size_t i = 0; i < remotes_.size() && current(); ++i) {
            if (!remotes_[i] || forward_stats_[i]->state == forward::forward_state::up) continue;
            auto r = co_await remotes_[i]->request(s, ssh::clock_type::now() + 15s);
            if (!current()) co_return;
            if (r) {
                forward_stats_[i]->state = forward::forward_state::up;
                emit({{"type", "forward_up"},
                      {"forward", forward_stats_[i]->spec.text},
                      {"bound_port", *r}});
            } else {
                all = false;
                if (forward_stats_[i]->state != forward::forward_state::failed)
                    emit({{"type", "forward_failed"},
                          {"forward", forward_stats_[i]->spec.text},
                          {"error", core::log_text(r.error().message, 200)}});
                forward_stats_[i]->state = forward::forward_state::failed;
                forward_stats_[i]->last_error = r.error().message;
            }
        }
        if (all || !current()) co_return;
        // The server may still hold the port for the old session: ask again.
        pause.expires_after(std::max<std::chrono::milliseconds>(config_.keepalive, 1s));
        boost::system::error_code ec;
        co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
}

asio::awaitable<void> link::run_lane(std::size_t index) {
    auto self = shared_from_this();
    auto& l = *lanes_[index];
    const auto& tname = l.transport.config.name;
    if (!l.transport.options) {
        l.state = lane_state::unsupported;
        l.last_error = l.transport.unsupported;
        co_return;
    }
    while (!stopped_) {
        if (!wanted(index)) {
            l.state = lane_state::idle;
            co_await sleep(l, 1h);
            continue;
        }
        l.state = lane_state::connecting;
        l.kick = false;
        auto opts = *l.transport.options;
        opts.server_alive_interval = 0s;  // our probes watch the session
        // A stalled transport must not hold a connect for long.
        opts.connect_timeout = std::min(
            opts.connect_timeout, std::max<std::chrono::milliseconds>(3 * config_.keepalive, 5s));
        auto s = co_await ssh::session::connect(executor_, opts);
        if (stopped_) {
            if (s) (*s)->abort();
            break;
        }
        if (!s) {
            ++l.connect_failures;
            l.health.on_connect_failed();
            l.state = lane_state::down;
            const bool changed = l.last_error != s.error().message;
            l.last_error = s.error().message;
            if (changed)
                emit({{"type", "connect_failed"},
                      {"transport", tname},
                      {"error", core::log_text(s.error().message, 200)}});
            spdlog::info("link {}: transport {}: {}", config_.name, tname,
                         core::log_text(s.error().message, 200));
            auto delay = l.retry.next().value_or(config_.keepalive);
            if (!active_) recover(index);
            if (!l.kick) co_await sleep(l, delay);
            continue;
        }
        l.retry.reset();
        l.session = *s;
        l.health.on_connected();
        l.state = lane_state::up;
        l.last_error.clear();
        ++l.connects;
        emit({{"type", "transport_up"}, {"transport", tname}, {"index", index}});
        core::spawn(
            executor_, [self, index, sess = *s] { return self->drive(index, sess); },
            "link session driver");
        reselect(fmt::format("transport {} is up", tname));
        while (!stopped_ && l.session == *s && !l.kick) {
            const auto started = ssh::clock_type::now();
            auto rtt = co_await probe(*s);
            if (l.session != *s) break;
            const bool was_clean = l.health.clean();
            l.health.on_probe(rtt, policy(), started);
            if (!rtt || !l.health.clean())
                emit({{"type", "probe_failed"},
                      {"transport", tname},
                      {"streak", l.health.failure_streak},
                      {"rtt_ms", rtt ? nlohmann::json(static_cast<double>(rtt->count()) / 1000.0)
                                     : nlohmann::json()}});
            if (!l.health.healthy(policy())) {
                drop(l, fmt::format("{} keepalive probe(s) in a row failed or were slower than {}",
                                    l.health.failure_streak,
                                    core::format_duration(config_.probe_timeout())));
                break;
            }
            reselect(fmt::format("probe on {}", tname));
            if (was_clean != l.health.clean()) wake_acquirers();
            if (!wanted(index)) {
                drop(l, "not needed (start: on_demand)");
                break;
            }
            // After a failed probe the next goes at once: N failures in a
            // row then take N probe timeouts, not N intervals.
            if (l.health.failure_streak > 0) continue;
            const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                ssh::clock_type::now() - started);
            if (elapsed < config_.keepalive) co_await sleep(l, config_.keepalive - elapsed);
        }
        if (l.session == *s) drop(l, "restart requested");
    }
    l.state = lane_state::idle;
}

uint16_t link::local_port(std::size_t index) const {
    return index < locals_.size() && locals_[index] ? locals_[index]->port() : 0;
}

link_state link::state() const noexcept {
    if (stopped_) return link_state::stopped;
    bool any_supported = false, any_tried = false;
    for (const auto& l : lanes_) {
        any_supported |= l->transport.options.has_value();
        any_tried |= l->connects > 0 || l->connect_failures > 0;
    }
    if (!any_supported) return link_state::unsupported;
    if (!active_) return any_tried ? link_state::down : link_state::starting;
    return lanes_[*active_]->health.clean() ? link_state::up : link_state::degraded;
}

nlohmann::json link::status() const {
    auto opt_ms = [](const std::optional<double>& v) {
        return v ? nlohmann::json(std::round(*v * 1000.0) / 1000.0) : nlohmann::json();
    };
    nlohmann::json j;
    j["name"] = config_.name;
    j["state"] = std::string(to_string(state()));
    j["target"] = config_.is_relay() ? nlohmann::json() : nlohmann::json(config_.target);
    if (active_) {
        const auto& l = *lanes_[*active_];
        j["transport"] = {{"index", *active_},
                          {"type", std::string(to_string(l.transport.config.type))},
                          {"name", l.transport.config.name}};
        j["rtt_ms"] = opt_ms(l.health.rtt_ms);
    } else {
        j["transport"] = nullptr;
        j["rtt_ms"] = nullptr;
    }
    j["preferred"] = {{"index", preferred_},
                      {"name", lanes_.empty() ? "" : lanes_[preferred_]->transport.config.name}};
    j["switches"] = switches_;
    j["recovery_step"] = std::string(to_string(recovery_.step()));
    j["escalations"] = escalations_;
    std::uint64_t in = 0, out = 0;
    nlohmann::json forwards = nlohmann::json::array();
    for (std::size_t i = 0; i < forward_stats_.size(); ++i) {
        const auto& f = *forward_stats_[i];
        in += f.bytes_in;
        out += f.bytes_out;
        nlohmann::json fj{{"spec", f.spec.text},
                          {"state", std::string(forward::to_string(f.state))},
                          {"connections", f.connections},
                          {"failures", f.failures},
                          {"open_channels", f.open_channels},
                          {"bytes_in", f.bytes_in},
                          {"bytes_out", f.bytes_out}};
        if (locals_[i]) fj["local_port"] = locals_[i]->port();
        if (f.bound_port) fj["bound_port"] = *f.bound_port;
        if (!f.last_error.empty()) fj["last_error"] = core::log_text(f.last_error, 200);
        forwards.push_back(std::move(fj));
    }
    j["bytes"] = {{"in", in}, {"out", out}};
    j["exec_pool"] = {{"enabled", serves_execs()},
                      {"started", execs_started_},
                      {"refused", execs_refused_},
                      {"sftp_opened", sftp_opened_},
                      {"sftp_refused", sftp_refused_}};
    j["forwards"] = std::move(forwards);
    nlohmann::json ts = nlohmann::json::array();
    for (std::size_t i = 0; i < lanes_.size(); ++i) {
        const auto& l = *lanes_[i];
        nlohmann::json t{{"index", i},
                         {"type", std::string(to_string(l.transport.config.type))},
                         {"name", l.transport.config.name},
                         {"state", std::string(to_string(l.state))},
                         {"active", active_ == i},
                         {"rtt_ms", opt_ms(l.health.rtt_ms)},
                         {"rtt_ewma_ms", opt_ms(l.health.ewma_ms)},
                         {"failure_streak", l.health.failure_streak},
                         {"healthy_streak", l.health.healthy_streak},
                         {"probes", l.health.probes},
                         {"probe_failures", l.health.probe_failures},
                         {"connects", l.connects},
                         {"connect_failures", l.connect_failures},
                         {"predicted_failure_s", prediction(i)}};
        if (!l.last_error.empty()) t["last_error"] = core::log_text(l.last_error, 200);
        // For `tunnel ui`: the score (health_score.hpp) and the RTT history of this session.
        t["score"] = health_score(l.health, policy(), config_.probe_timeout(), config_.keepalive,
                                  l.health.predicted_failure(config_.probe_timeout()));
        nlohmann::json samples = nlohmann::json::array();
        for (const auto& sample : l.health.samples)
            samples.push_back(std::round(sample.rtt_ms * 1000.0) / 1000.0);
        t["rtt_samples_ms"] = std::move(samples);
        ts.push_back(std::move(t));
    }
    j["transports"] = std::move(ts);
    return j;
}

}  // namespace tunnel::link
