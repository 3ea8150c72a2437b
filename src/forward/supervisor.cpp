#include "forward/supervisor.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/duration.hpp"

namespace tunnel::forward {

namespace {

using namespace std::chrono_literals;

bool fatal_on_first_attempt(const core::error& e) {
    switch (e.code) {
        case core::errc::auth_failed:
        case core::errc::host_key_unknown:
        case core::errc::host_key_changed:
        case core::errc::invalid_argument:
        case core::errc::not_found:
        case core::errc::permission_denied:
            return true;
        default:
            return false;
    }
}

std::string ms(std::chrono::milliseconds d) {
    return core::format_duration(d);
}

}  // namespace

core::result<std::shared_ptr<supervisor>> supervisor::create(asio::any_io_executor executor,
                                                             supervisor_options options) {
    auto sup = std::make_shared<supervisor>(executor, std::move(options));
    local_forward_options lo;
    lo.outage_wait = sup->options_.outage_wait;
    lo.open_timeout = sup->options_.open_timeout;
    lo.socks_auth = sup->options_.socks_auth;
    for (std::size_t i = 0; i < sup->forward_stats_.size(); ++i) {
        auto& fs = sup->forward_stats_[i];
        if (fs->spec.kind == forward_kind::remote) {
            sup->remotes_[i] = std::make_unique<remote_forward>(fs);
            continue;
        }
        auto l = local_forward::open(executor, fs, *sup, lo);
        if (!l) {
            for (auto& opened : sup->locals_)
                if (opened) opened->stop();
            return tl::unexpected(l.error());
        }
        sup->locals_[i] = *l;
    }
    return sup;
}

supervisor::supervisor(asio::any_io_executor executor, supervisor_options options)
    : executor_(executor), options_(std::move(options)), pause_timer_(executor) {
    stats_.destination = options_.target.destination();
    for (const auto& spec : options_.forwards) {
        auto fs = std::make_shared<forward_stats>();
        fs->spec = spec;
        forward_stats_.push_back(std::move(fs));
    }
    locals_.resize(forward_stats_.size());
    remotes_.resize(forward_stats_.size());
}

uint16_t supervisor::local_port(std::size_t index) const {
    return index < locals_.size() && locals_[index] ? locals_[index]->port() : 0;
}

supervisor_stats supervisor::snapshot() const {
    supervisor_stats s = stats_;
    s.forwards.clear();
    for (const auto& f : forward_stats_) s.forwards.push_back(*f);
    return s;
}

void supervisor::set_state(forward_stats& f, forward_state state, std::string why) {
    if (f.state == state) return;
    f.state = state;
    if (!why.empty()) f.last_error = why;
    if (state == forward_state::failed)
        spdlog::warn("forward {} failed: {}", f.spec.describe(), why);
    else
        spdlog::info("forward {} is {}", f.spec.describe(), to_string(state));
}

void supervisor::set_session(std::shared_ptr<ssh::session> s) {
    current_ = std::move(s);
    stats_.connected = current_ != nullptr;
    if (current_)
        for (auto* t : acquirers_) t->cancel();
}

asio::awaitable<std::shared_ptr<ssh::session>> supervisor::acquire(ssh::time_point deadline) {
    auto self = shared_from_this();
    while (!stopped_) {
        if (current_) co_return current_;
        if (ssh::clock_type::now() >= deadline) co_return nullptr;
        asio::steady_timer t(executor_);
        t.expires_at(deadline);
        acquirers_.push_back(&t);
        boost::system::error_code ec;
        co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        std::erase(acquirers_, &t);
    }
    co_return nullptr;
}

void supervisor::stop() {
    if (stopped_) return;
    stopped_ = true;
    spdlog::info("stopping: closing listeners and channels");
    for (auto& l : locals_)
        if (l) l->stop();
    for (auto* t : acquirers_) t->cancel();
    pause_timer_.cancel();
    if (current_) current_->abort();
}

void supervisor::reconnect_now(const std::string& why) {
    if (stopped_ || !current_) return;
    spdlog::info("reconnecting to {}: {}", stats_.destination, why);
    current_->abort();
}

std::int64_t supervisor::open_channels() const {
    std::int64_t n = 0;
    for (const auto& f : forward_stats_) n += f->open_channels;
    return n;
}

asio::awaitable<void> supervisor::pause(std::chrono::milliseconds d) {
    pause_timer_.expires_after(d);
    boost::system::error_code ec;
    co_await pause_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

asio::awaitable<core::result<void>> supervisor::run() {
    auto self = shared_from_this();
    for (auto& l : locals_)
        if (l) l->start();
    core::backoff retry(options_.backoff, options_.random);
    bool ever_connected = false;
    auto lost_at = ssh::clock_type::now();

    while (!stopped_) {
        if (options_.before_connect) {
            options_.before_connect(options_.target);
            stats_.destination = options_.target.destination();
        }
        auto s = co_await ssh::session::connect(executor_, options_.target);
        if (stopped_) break;
        if (!s) {
            ++stats_.connect_failures;
            stats_.last_error = s.error().message;
            if (!ever_connected && fatal_on_first_attempt(s.error()))
                co_return tl::unexpected(s.error());
            if (!options_.reconnect) co_return tl::unexpected(s.error());
            auto delay = retry.next();
            if (!delay)
                co_return core::fail(s.error().code,
                                     fmt::format("{} (gave up after {} attempts, --max-retries)",
                                                 s.error().message, retry.failures()));
            spdlog::warn("{}; retrying in {}", s.error().message, ms(*delay));
            co_await pause(*delay);
            continue;
        }
        retry.reset();
        ++stats_.connects;
        if (ever_connected) {
            ++stats_.reconnects;
            spdlog::warn("reconnected to {} after {}", stats_.destination,
                         ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                             ssh::clock_type::now() - lost_at)));
        } else {
            spdlog::info("connected to {}", stats_.destination);
        }
        ever_connected = true;
        auto served = co_await serve(*s);
        lost_at = ssh::clock_type::now();
        (*s)->abort();
        set_session(nullptr);
        for (auto& f : forward_stats_)
            if (f->state == forward_state::up) set_state(*f, forward_state::down);
        if (stopped_) break;
        ++stats_.disconnects;
        if (!served) {
            stats_.last_error = served.error().message;
            if (served.error().code != core::errc::disconnected &&
                served.error().code != core::errc::timeout)
                co_return tl::unexpected(served.error());  // --exit-on-forward-failure
            spdlog::warn("{}; reconnecting", served.error().message);
        }
        if (!options_.reconnect)
            co_return core::fail(
                core::errc::disconnected,
                fmt::format("connection to {} lost (--no-reconnect)", stats_.destination));
    }
    co_return core::result<void>{};
}

asio::awaitable<bool> supervisor::request_remote(std::shared_ptr<ssh::session> s, std::size_t i) {
    auto& rf = *remotes_[i];
    auto r = co_await rf.request(s, ssh::clock_type::now() + options_.open_timeout);
    if (!r) {
        const bool first = rf.stats().state != forward_state::failed;
        set_state(rf.stats(), forward_state::failed, r.error().message);
        if (first && options_.on_remote_refused) options_.on_remote_refused(rf.stats());
        co_return false;
    }
    set_state(rf.stats(), forward_state::up);
    if (options_.on_remote_listening) options_.on_remote_listening(rf.stats());
    co_return true;
}

void supervisor::accept_remote_connections(const std::shared_ptr<ssh::session>& s) {
    // Reverse-forward connections queue in libssh: take them all.
    int port = 0;
    while (any_remote_) {
        auto ch = ssh::channel::accept_forwarded(s, port);
        if (!ch) return;
        spdlog::debug("forwarded connection for the server's port {}", port);
        bool taken = false;
        for (auto& rf : remotes_) {
            if (rf && rf->owns(port)) {
                rf->carry(std::move(*ch), options_.open_timeout);
                taken = true;
                break;
            }
        }
        if (!taken) {
            spdlog::warn(
                "the server opened a forwarded connection for port {}, which we did not ask for",
                port);
            ch->close();
        }
    }
}

asio::awaitable<core::result<void>> supervisor::serve(std::shared_ptr<ssh::session> s) {
    // -R first: its replies must not be confused with anything else.
    for (std::size_t i = 0; i < remotes_.size(); ++i) {
        if (!remotes_[i]) continue;
        if (!(co_await request_remote(s, i))) {
            if (!s->alive())
                co_return core::fail(core::errc::disconnected,
                                     "connection lost while requesting -R");
            if (options_.exit_on_forward_failure)
                co_return core::fail(
                    core::errc::channel_failed,
                    remotes_[i]->stats().last_error + " (--exit-on-forward-failure)");
        }
    }
    for (std::size_t i = 0; i < locals_.size(); ++i)
        if (locals_[i]) set_state(*forward_stats_[i], forward_state::up);
    set_session(s);

    any_remote_ =
        std::any_of(remotes_.begin(), remotes_.end(), [](const auto& r) { return r != nullptr; });
    auto next_retry = ssh::clock_type::now() + options_.forward_retry;
    while (!stopped_) {
        // Take the queued reverse-forward connections before sleeping: the
        // server's CHANNEL_OPEN may have arrived inside an earlier libssh call
        // (the tcpip-forward request's own reply packet, a pump's read), and a
        // queued message does not make the socket readable again.
        accept_remote_connections(s);
        bool any_failed = false;
        for (std::size_t i = 0; i < remotes_.size(); ++i)
            any_failed |= remotes_[i] && forward_stats_[i]->state == forward_state::failed;
        const auto until = any_failed ? next_retry : ssh::time_point::max();
        auto w = co_await s->wait(until);
        if (!w && w.error().code != core::errc::timeout) co_return tl::unexpected(w.error());
        if (any_failed && ssh::clock_type::now() >= next_retry) {
            for (std::size_t i = 0; i < remotes_.size(); ++i)
                if (remotes_[i] && forward_stats_[i]->state == forward_state::failed)
                    co_await request_remote(s, i);
            next_retry = ssh::clock_type::now() + options_.forward_retry;
        }
    }
    co_return core::result<void>{};
}

}  // namespace tunnel::forward
