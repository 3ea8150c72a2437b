#include "cluster/redis_connection.hpp"

#include <poll.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <fmt/format.h>

#include "core/log_text.hpp"

namespace tunnel::cluster {

namespace {

// Rounds of hiredis I/O per readiness before yielding to other handlers.
constexpr int max_rounds = 16;
constexpr std::size_t max_args = 1024;

reply convert(const redisReply* r) {
    reply out;
    switch (r->type) {
        case REDIS_REPLY_STRING:
            out.type = reply::kind::string;
            out.text.assign(r->str, r->len);
            break;
        case REDIS_REPLY_STATUS:
            out.type = reply::kind::status;
            out.text.assign(r->str, r->len);
            break;
        case REDIS_REPLY_ERROR:
            out.type = reply::kind::error;
            out.text.assign(r->str, r->len);
            break;
        case REDIS_REPLY_INTEGER:
            out.type = reply::kind::integer;
            out.integer = r->integer;
            break;
        case REDIS_REPLY_ARRAY:
            out.type = reply::kind::array;
            out.elements.reserve(r->elements);
            for (std::size_t i = 0; i < r->elements; ++i)
                out.elements.push_back(convert(r->element[i]));
            break;
        default:
            out.type = reply::kind::nil;
    }
    return out;
}

redis_connection* self_of(void* p) {
    return static_cast<redis_connection*>(p);
}

}  // namespace

std::string describe(const reply& r) {
    switch (r.type) {
        case reply::kind::nil:
            return "nil";
        case reply::kind::status:
            return fmt::format("status {}", core::log_text(r.text, 64));
        case reply::kind::error:
            return fmt::format("error {}", core::log_text(r.text, 200));
        case reply::kind::integer:
            return fmt::format("integer {}", r.integer);
        case reply::kind::string:
            return fmt::format("string({})", r.text.size());
        case reply::kind::array:
            return fmt::format("array({})", r.elements.size());
    }
    return "?";
}

void redis_connection::context_deleter::operator()(redisAsyncContext* ctx) const noexcept {
    redisAsyncFree(ctx);
}

redis_connection::redis_connection(strand ex, redis_endpoint endpoint)
    : ex_(ex), endpoint_(std::move(endpoint)), fd_(ex), connect_signal_(ex) {}

redis_connection::~redis_connection() {
    on_closed_ = nullptr;  // the owner is going away too
    ctx_.reset();
}

asio::awaitable<core::result<std::shared_ptr<redis_connection>>> redis_connection::open(
    strand ex, redis_endpoint endpoint, std::chrono::milliseconds timeout,
    std::function<void()> on_closed) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const std::string where = describe(endpoint);
    // hiredis resolves names with a blocking getaddrinfo: hand it an address.
    boost::system::error_code ec;
    std::string ip;
    if (auto literal = asio::ip::make_address(endpoint.host, ec); !ec) {
        ip = literal.to_string();
    } else {
        asio::ip::tcp::resolver resolver(ex);
        auto found = co_await resolver.async_resolve(endpoint.host, std::to_string(endpoint.port),
                                                     asio::redirect_error(asio::use_awaitable, ec));
        if (ec || found.empty())
            co_return core::fail(core::errc::connection_failed,
                                 fmt::format("redis {}: cannot resolve the host: {}", where,
                                             ec ? ec.message() : "no address"));
        ip = found.begin()->endpoint().address().to_string();
    }

    std::shared_ptr<redis_connection> self(new redis_connection(ex, endpoint));
    redisAsyncContext* ac = redisAsyncConnect(ip.c_str(), endpoint.port);
    if (!ac)
        co_return core::fail(core::errc::resource_exhausted,
                             fmt::format("redis {}: out of memory", where));
    if (ac->err) {
        std::string why = ac->errstr;
        redisAsyncFree(ac);
        co_return core::fail(core::errc::connection_failed,
                             fmt::format("redis {}: cannot connect: {}", where, why));
    }
    self->ctx_.reset(ac);
    ac->data = self.get();
    ac->ev.data = self.get();
    ac->ev.addRead = &redis_connection::add_read;
    ac->ev.delRead = &redis_connection::del_read;
    ac->ev.addWrite = &redis_connection::add_write;
    ac->ev.delWrite = &redis_connection::del_write;
    ac->ev.cleanup = &redis_connection::cleanup;
    self->fd_.assign(ac->c.fd, ec);
    if (ec) {
        self->close("cannot watch its socket");
        co_return core::fail(
            core::errc::io_error,
            fmt::format("redis {}: cannot watch the socket: {}", where, ec.message()));
    }
    redisAsyncSetDisconnectCallback(ac, &redis_connection::on_disconnect);
    // Arms the first write event, which tells us the connect finished.
    redisAsyncSetConnectCallback(ac, &redis_connection::on_connect);
    while (!self->connected_) {
        if (!self->alive())
            co_return core::fail(core::errc::connection_failed,
                                 fmt::format("redis {}: cannot connect: {}", where,
                                             self->close_reason_.empty() ? std::string("closed")
                                                                         : self->close_reason_));
        const bool woke = co_await self->connect_signal_.wait(deadline);
        if (!woke && !self->connected_) {
            self->close("connect timed out");
            co_return core::fail(
                core::errc::timeout,
                fmt::format("redis {}: no connection within {} ms", where, timeout.count()));
        }
    }
    self->on_closed_ = std::move(on_closed);
    co_return self;
}

void redis_connection::send(const std::vector<std::string>& args, reply_handler done) {
    if (!ctx_) {
        done(core::fail(core::errc::disconnected,
                        fmt::format("redis {}: the connection is closed", describe(endpoint_))));
        return;
    }
    if (args.empty() || args.size() > max_args) {
        done(core::fail(core::errc::invalid_argument,
                        fmt::format("a Redis command takes 1 to {} words", max_args)));
        return;
    }
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    argv.reserve(args.size());
    lens.reserve(args.size());
    for (const auto& a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
    }
    auto* holder = new reply_handler(std::move(done));
    if (redisAsyncCommandArgv(ctx_.get(), &redis_connection::on_reply, holder,
                              static_cast<int>(argv.size()), argv.data(),
                              lens.data()) != REDIS_OK) {
        auto handler = std::unique_ptr<reply_handler>(holder);
        (*handler)(core::fail(core::errc::disconnected,
                              fmt::format("redis {}: the command could not be queued (the "
                                          "connection is closing)",
                                          describe(endpoint_))));
        return;
    }
    ++in_flight_;
}

void redis_connection::subscribe(const std::string& channel, message_handler on_message) {
    if (!ctx_) return;
    on_message_ = std::move(on_message);
    const char* argv[] = {"SUBSCRIBE", channel.data()};
    const std::size_t lens[] = {9, channel.size()};
    // privdata is `this`: subscription callbacks live as long as the context.
    (void)redisAsyncCommandArgv(ctx_.get(), &redis_connection::on_message, this, 2, argv, lens);
}

void redis_connection::close(std::string reason) {
    if (!ctx_) return;
    if (close_reason_.empty()) close_reason_ = std::move(reason);
    ctx_.reset();
}

void redis_connection::note_error() {
    if (ctx_ && ctx_->err && close_reason_.empty())
        close_reason_ = ctx_->errstr[0] ? std::string(ctx_->errstr) : std::string("I/O error");
}

void redis_connection::add_read(void* p) {
    auto* s = self_of(p);
    s->want_read_ = true;
    s->watch(true);
}
void redis_connection::del_read(void* p) {
    self_of(p)->want_read_ = false;
}
void redis_connection::add_write(void* p) {
    auto* s = self_of(p);
    s->want_write_ = true;
    s->watch(false);
}
void redis_connection::del_write(void* p) {
    self_of(p)->want_write_ = false;
}

void redis_connection::cleanup(void* p) {
    auto* s = self_of(p);
    s->note_error();
    if (s->close_reason_.empty()) s->close_reason_ = "closed by the server";
    (void)s->ctx_.release();  // hiredis frees it after this hook (or we are freeing it)
    s->want_read_ = s->want_write_ = false;
    if (s->fd_.is_open()) {
        boost::system::error_code ec;
        s->fd_.cancel(ec);
        (void)s->fd_.release();  // hiredis closes the fd
    }
    s->connect_signal_.notify();
    if (s->on_closed_) {
        auto closed = std::move(s->on_closed_);
        s->on_closed_ = nullptr;
        closed();
    }
}

void redis_connection::on_connect(const redisAsyncContext* ac, int status) {
    auto* s = self_of(ac->data);
    s->connect_status_ = status;
    if (status == REDIS_OK) {
        s->connected_ = true;
    } else if (s->close_reason_.empty()) {
        s->close_reason_ = ac->errstr[0] ? std::string(ac->errstr) : std::string("refused");
    }
    s->connect_signal_.notify();
}

void redis_connection::on_disconnect(const redisAsyncContext* ac, int status) {
    auto* s = self_of(ac->data);
    if (status != REDIS_OK && s->close_reason_.empty())
        s->close_reason_ = ac->errstr[0] ? std::string(ac->errstr) : std::string("I/O error");
}

void redis_connection::on_reply(redisAsyncContext* ac, void* r, void* privdata) {
    std::unique_ptr<reply_handler> handler(static_cast<reply_handler*>(privdata));
    auto* s = self_of(ac->data);
    if (s->in_flight_ > 0) --s->in_flight_;
    if (!r) {
        (*handler)(core::fail(
            core::errc::disconnected,
            fmt::format("redis {}: the connection closed before the reply ({})",
                        describe(s->endpoint_),
                        s->close_reason_.empty() ? std::string("closed") : s->close_reason_)));
        return;
    }
    (*handler)(convert(static_cast<redisReply*>(r)));
}

void redis_connection::on_message(redisAsyncContext* /*ac*/, void* r, void* privdata) {
    auto* s = self_of(privdata);
    if (!r || !s->on_message_) return;
    const auto* rep = static_cast<redisReply*>(r);
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3) return;
    const auto* kind = rep->element[0];
    if (kind->type != REDIS_REPLY_STRING || std::string_view(kind->str, kind->len) != "message")
        return;
    const auto* ch = rep->element[1];
    const auto* payload = rep->element[2];
    if (ch->type != REDIS_REPLY_STRING || payload->type != REDIS_REPLY_STRING) return;
    s->on_message_(std::string(ch->str, ch->len), std::string(payload->str, payload->len));
}

bool redis_connection::ready_now(bool read) const {
    if (!ctx_) return false;
    pollfd p{ctx_->c.fd, static_cast<short>(read ? POLLIN : POLLOUT), 0};
    return ::poll(&p, 1, 0) > 0 && p.revents != 0;
}

void redis_connection::watch(bool read) {
    if (!ctx_ || !fd_.is_open()) return;
    bool& armed = read ? read_armed_ : write_armed_;
    if (!armed) {
        armed = true;
        fd_.async_wait(
            read ? asio::posix::stream_descriptor::wait_read
                 : asio::posix::stream_descriptor::wait_write,
            asio::bind_executor(ex_, [weak = weak_from_this(), read](boost::system::error_code ec) {
                auto s = weak.lock();
                if (!s) return;
                (read ? s->read_armed_ : s->write_armed_) = false;
                if (ec || !s->ctx_) return;
                s->service(read);
            }));
    }
    // Asio's epoll is edge-triggered: readiness that came before the wait
    // was queued may have produced its edge already. Look once more.
    if (ready_now(read)) post_service(read);
}

void redis_connection::post_service(bool read) {
    bool& posted = read ? read_posted_ : write_posted_;
    if (posted) return;
    posted = true;
    asio::post(ex_, [weak = weak_from_this(), read] {
        auto s = weak.lock();
        if (!s) return;
        (read ? s->read_posted_ : s->write_posted_) = false;
        s->service(read);
    });
}

void redis_connection::service(bool read) {
    auto keep = shared_from_this();  // a callback may drop the owner's reference
    for (int round = 0; round < max_rounds; ++round) {
        if (!ctx_ || !(read ? want_read_ : want_write_)) return;
        if (read)
            redisAsyncHandleRead(ctx_.get());
        else
            redisAsyncHandleWrite(ctx_.get());
        if (!ctx_ || !(read ? want_read_ : want_write_)) return;
        if (!ready_now(read)) {
            watch(read);
            return;
        }
    }
    post_service(read);  // more to do: let other handlers run first
}

}  // namespace tunnel::cluster
