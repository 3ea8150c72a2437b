#include "cluster/redis_client.hpp"

#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/log_text.hpp"
#include "core/spawn.hpp"

namespace tunnel::cluster {

namespace {

using steady = std::chrono::steady_clock;

std::chrono::milliseconds ms_until(steady::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
    return left.count() > 0 ? left : std::chrono::milliseconds(0);
}

struct pending {
    explicit pending(const asio::any_io_executor& ex) : timer(ex) {}
    asio::steady_timer timer;
    std::optional<core::result<reply>> result;
};

}  // namespace

std::shared_ptr<redis_client> redis_client::create(asio::any_io_executor ex, redis_address address,
                                                   redis_options options) {
    return std::shared_ptr<redis_client>(
        new redis_client(std::move(ex), std::move(address), std::move(options)));
}

redis_client::redis_client(asio::any_io_executor ex, redis_address address, redis_options options)
    : strand_(asio::make_strand(ex)),
      address_(std::move(address)),
      options_(std::move(options)),
      where_(describe(address_)),
      supervisor_wake_(strand_),
      backoff_timer_(strand_) {}

redis_client::~redis_client() {
    if (conn_) conn_->close("client destroyed");
}

void redis_client::start() {
    asio::dispatch(strand_, [self = shared_from_this()] {
        if (self->started_ || self->stopped_) return;
        self->started_ = true;
        core::spawn(
            self->strand_, [self] { return self->supervise(); },
            fmt::format("{} supervisor", self->options_.name));
    });
}

void redis_client::stop() {
    asio::dispatch(strand_, [self = shared_from_this()] {
        if (self->stopped_) return;
        self->stopped_ = true;
        self->ready_ = false;
        if (auto conn = std::move(self->conn_)) conn->close("stopped");
        self->supervisor_wake_.notify();
        self->backoff_timer_.cancel();
        self->wake_waiters();
    });
}

void redis_client::subscribe(std::string channel, message_handler on_message) {
    asio::dispatch(strand_, [self = shared_from_this(), channel = std::move(channel),
                             on_message = std::move(on_message)]() mutable {
        self->subscriptions_[channel] = std::move(on_message);
        if (self->ready_ && self->conn_) {
            std::weak_ptr<redis_client> weak = self;
            self->conn_->subscribe(channel, [weak](const std::string& ch, const std::string& msg) {
                if (auto s = weak.lock())
                    if (auto it = s->subscriptions_.find(ch); it != s->subscriptions_.end())
                        asio::post(s->strand_, [h = it->second, ch, msg] { h(ch, msg); });
            });
        }
    });
}

void redis_client::on_connected(std::function<void()> handler) {
    asio::dispatch(strand_, [self = shared_from_this(), handler = std::move(handler)]() mutable {
        self->connected_handlers_.push_back(std::move(handler));
    });
}

void redis_client::wake_waiters() {
    for (auto* t : waiters_) t->cancel();
}

void redis_client::connection_closed(const std::shared_ptr<redis_connection>& conn) {
    if (conn != conn_) return;
    ready_ = false;
    supervisor_wake_.notify();
    wake_waiters();
}

asio::awaitable<void> redis_client::supervise() {
    auto self = shared_from_this();
    core::backoff retry(options_.reconnect);
    bool down = false;
    while (!stopped_) {
        auto conn = co_await connect_once();
        if (stopped_) {
            if (conn) (*conn)->close("stopped");
            break;
        }
        if (conn) {
            conn_ = std::move(*conn);
            ++connections_;
            retry.reset();
            if (down || connections_ == 1)
                spdlog::info("{}: connected to {} ({})", options_.name, where_,
                             describe(conn_->endpoint()));
            down = false;
            last_error_.clear();
            std::weak_ptr<redis_client> weak = self;
            for (const auto& [channel, handler] : subscriptions_)
                conn_->subscribe(channel, [weak](const std::string& ch, const std::string& msg) {
                    if (auto s = weak.lock())
                        if (auto it = s->subscriptions_.find(ch); it != s->subscriptions_.end())
                            asio::post(s->strand_, [h = it->second, ch, msg] { h(ch, msg); });
                });
            ready_ = conn_->alive();
            wake_waiters();
            auto handlers = connected_handlers_;
            for (auto& h : handlers) h();
            while (!stopped_ && conn_ && conn_->alive())
                (void)co_await supervisor_wake_.wait(steady::now() + std::chrono::hours(24));
            ready_ = false;
            if (stopped_) break;
            last_error_ = conn_ ? conn_->close_reason() : std::string("closed");
            spdlog::warn(
                "{}: lost the connection to {}: {}; reconnecting (known routes keep "
                "serving meanwhile)",
                options_.name, where_, core::log_text(last_error_, 200));
            down = true;
            conn_.reset();
        } else {
            last_error_ = conn.error().message;
            if (!down)
                spdlog::warn("{}: {}; retrying with backoff", options_.name,
                             core::log_text(last_error_, 300));
            down = true;
        }
        auto delay = retry.next().value_or(options_.reconnect.cap);
        backoff_timer_.expires_after(delay);
        boost::system::error_code ec;
        co_await backoff_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    ready_ = false;
    wake_waiters();
}

asio::awaitable<core::result<redis_endpoint>> redis_client::ask_sentinels(
    steady::time_point deadline) {
    std::string problems;
    for (const auto& sentinel : address_.endpoints) {
        auto opened = redis_connection::open(strand_, sentinel, ms_until(deadline), nullptr);
        auto conn = co_await std::move(opened);
        if (!conn) {
            problems += fmt::format("; {}", conn.error().message);
            continue;
        }
        std::vector<std::string> ask{"SENTINEL", "get-master-addr-by-name", address_.master};
        auto sent = send_on(*conn, std::move(ask), deadline);
        auto r = co_await std::move(sent);
        (*conn)->close("asked");
        if (!r) {
            problems += fmt::format("; sentinel {}: {}", describe(sentinel), r.error().message);
            continue;
        }
        if (r->is_array() && r->elements.size() == 2 && r->elements[0].is_string() &&
            r->elements[1].is_string()) {
            unsigned port = 0;
            try {
                port = static_cast<unsigned>(std::stoul(r->elements[1].text));
            } catch (const std::exception&) {
                port = 0;
            }
            if (port > 0 && port <= 65535)
                co_return redis_endpoint{r->elements[0].text, static_cast<std::uint16_t>(port)};
        }
        problems +=
            fmt::format("; sentinel {} does not know master \"{}\" ({})", describe(sentinel),
                        core::log_text(address_.master, 64), describe(*r));
    }
    co_return core::fail(core::errc::connection_failed,
                         fmt::format("no sentinel of {} named the master{}", where_, problems));
}

asio::awaitable<core::result<std::shared_ptr<redis_connection>>> redis_client::connect_once() {
    const auto deadline = steady::now() + options_.connect_timeout;
    redis_endpoint target;
    if (address_.type == redis_address::kind::sentinel) {
        auto asked = ask_sentinels(deadline);
        auto master = co_await std::move(asked);
        if (!master) co_return tl::unexpected(master.error());
        target = std::move(*master);
    } else {
        target = address_.endpoints.front();
    }
    std::weak_ptr<redis_client> weak = shared_from_this();
    auto holder = std::make_shared<std::weak_ptr<redis_connection>>();
    auto opened = redis_connection::open(strand_, target, ms_until(deadline), [weak, holder] {
        auto s = weak.lock();
        auto c = holder->lock();
        if (s && c) s->connection_closed(c);
    });
    auto conn = co_await std::move(opened);
    if (!conn) co_return tl::unexpected(conn.error());
    *holder = *conn;
    if (!address_.password.empty()) {
        std::vector<std::string> auth{"AUTH"};
        if (!address_.user.empty()) auth.push_back(address_.user);
        auth.push_back(address_.password);
        auto sent = send_on(*conn, std::move(auth), deadline);
        auto r = co_await std::move(sent);
        if (!r || r->is_error()) {
            (*conn)->close("AUTH failed");
            // Redis' message never holds the password; ours neither.
            co_return core::fail(core::errc::auth_failed,
                                 fmt::format("{}: AUTH refused: {} (check the password in "
                                             "cluster.redis)",
                                             where_, r ? describe(*r) : r.error().message));
        }
    }
    if (address_.db != 0) {
        std::vector<std::string> select{"SELECT", std::to_string(address_.db)};
        auto sent = send_on(*conn, std::move(select), deadline);
        auto r = co_await std::move(sent);
        if (!r || r->is_error()) {
            (*conn)->close("SELECT failed");
            co_return core::fail(core::errc::connection_failed,
                                 fmt::format("{}: SELECT {} refused: {}", where_, address_.db,
                                             r ? describe(*r) : r.error().message));
        }
    }
    if (address_.type == redis_address::kind::sentinel) {
        // A failover may be under way: the sentinels' answer can be stale.
        auto sent = send_on(*conn, {"ROLE"}, deadline);
        auto r = co_await std::move(sent);
        if (!r || !r->is_array() || r->elements.empty() || r->elements[0].text != "master") {
            (*conn)->close("not the master");
            co_return core::fail(core::errc::connection_failed,
                                 fmt::format("{}: {} is not the master (yet); asking the "
                                             "sentinels again",
                                             where_, describe(target)));
        }
    }
    co_return std::move(*conn);
}

asio::awaitable<core::result<reply>> redis_client::send_on(std::shared_ptr<redis_connection> conn,
                                                           std::vector<std::string> args,
                                                           steady::time_point deadline) {
    auto p = std::make_shared<pending>(strand_);
    conn->send(args, [p](core::result<reply> r) {
        p->result = std::move(r);
        p->timer.cancel();
    });
    if (!p->result) {
        p->timer.expires_at(deadline);
        boost::system::error_code ec;
        co_await p->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    if (!p->result)
        co_return core::fail(
            core::errc::timeout,
            fmt::format("{} {}: no reply to {} in time", options_.name, describe(conn->endpoint()),
                        core::log_text(args.front(), 32)));
    co_return std::move(*p->result);
}

asio::awaitable<bool> redis_client::wait_ready(steady::time_point deadline) {
    while (!ready_) {
        if (stopped_ || steady::now() >= deadline) co_return false;
        asio::steady_timer timer(strand_);
        timer.expires_at(deadline);
        waiters_.push_back(&timer);
        auto it = std::prev(waiters_.end());
        boost::system::error_code ec;
        co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        waiters_.erase(it);
    }
    co_return true;
}

asio::awaitable<core::result<reply>> redis_client::run_command(std::vector<std::string> args,
                                                               std::chrono::milliseconds timeout) {
    const auto deadline = steady::now() + timeout;
    if (args.empty())
        co_return core::fail(core::errc::invalid_argument, "a Redis command needs a name");
    if (!ready_) {
        if (!started_ || stopped_)
            co_return core::fail(core::errc::cancelled,
                                 fmt::format("{}: the client is not running", options_.name));
        const bool up = co_await wait_ready(deadline);
        if (!up)
            co_return core::fail(
                stopped_ ? core::errc::cancelled : core::errc::connection_failed,
                fmt::format("{}: {} is unreachable ({}); {} gave up after {} ms", options_.name,
                            where_, last_error_.empty() ? std::string("connecting") : last_error_,
                            core::log_text(args.front(), 32), timeout.count()));
    }
    auto conn = conn_;
    if (conn->in_flight() >= options_.max_in_flight)
        co_return core::fail(core::errc::resource_exhausted,
                             fmt::format("{}: {} commands are waiting for replies already",
                                         options_.name, options_.max_in_flight));
    auto sent = send_on(conn, std::move(args), deadline);
    auto r = co_await std::move(sent);
    if (!r && r.error().code == core::errc::timeout) conn->close("a command timed out");
    co_return r;
}

asio::awaitable<core::result<reply>> redis_client::command(std::vector<std::string> args) {
    auto op = command(std::move(args), options_.command_timeout);
    co_return co_await std::move(op);
}

asio::awaitable<core::result<reply>> redis_client::command(std::vector<std::string> args,
                                                           std::chrono::milliseconds timeout) {
    auto self = shared_from_this();
    auto op = asio::co_spawn(
        strand_,
        [self, args = std::move(args), timeout]() mutable {
            return self->run_command(std::move(args), timeout);
        },
        asio::use_awaitable);
    co_return co_await std::move(op);
}

asio::awaitable<bool> redis_client::wait_connected(std::chrono::milliseconds timeout) {
    auto self = shared_from_this();
    auto op = asio::co_spawn(
        strand_, [self, timeout] { return self->wait_ready(steady::now() + timeout); },
        asio::use_awaitable);
    co_return co_await std::move(op);
}

}  // namespace tunnel::cluster
