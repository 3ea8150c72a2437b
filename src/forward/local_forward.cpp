#include "forward/local_forward.hpp"

#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/log_text.hpp"
#include "core/spawn.hpp"
#include "forward/pump.hpp"

namespace tunnel::forward {

namespace {

socks_reply reply_for(const core::error& e) {
    const auto& m = e.message;
    if (m.find("refused") != std::string::npos) return socks_reply::connection_refused;
    if (m.find("resolve") != std::string::npos || m.find("Name or service") != std::string::npos ||
        m.find("unknown") != std::string::npos)
        return socks_reply::host_unreachable;
    if (m.find("prohibited") != std::string::npos) return socks_reply::not_allowed;
    if (e.code == core::errc::channel_failed) return socks_reply::host_unreachable;
    return socks_reply::general_failure;
}

// Closes with a FIN rather than a RST: discard what the client already sent
// (unread input makes close() reset the connection).
void close_cleanly(stream_socket& socket) {
    boost::system::error_code ec;
    std::array<char, 4096> sink;
    socket.non_blocking(true, ec);
    while (!ec && socket.available(ec) > 0) socket.read_some(asio::buffer(sink), ec);
    socket.shutdown(asio::socket_base::shutdown_both, ec);
    socket.close(ec);
}

}  // namespace

core::result<std::shared_ptr<local_forward>> local_forward::open(
    asio::any_io_executor executor, std::shared_ptr<forward_stats> stats, session_source& source,
    local_forward_options options) {
    auto listeners = open_listeners(executor, stats->spec.listen, stats->spec.text);
    if (!listeners) return tl::unexpected(listeners.error());
    return std::make_shared<local_forward>(executor, std::move(stats), source, std::move(options),
                                           std::move(*listeners));
}

local_forward::local_forward(asio::any_io_executor executor, std::shared_ptr<forward_stats> stats,
                             session_source& source, local_forward_options options,
                             std::vector<stream_acceptor> listeners)
    : executor_(std::move(executor)),
      stats_(std::move(stats)),
      source_(source),
      options_(std::move(options)),
      listeners_(std::move(listeners)) {}

void local_forward::start() {
    for (auto& l : listeners_)
        core::spawn(
            executor_, [self = shared_from_this(), &l]() { return self->accept_loop(l); },
            "local forward accept loop");
}

void local_forward::stop() {
    if (stopped_) return;
    stopped_ = true;
    for (auto& l : listeners_) {
        boost::system::error_code ignored;
        l.close(ignored);
    }
    if (stats_->spec.listen.is_unix()) ::unlink(stats_->spec.listen.path.c_str());
}

asio::awaitable<void> local_forward::accept_loop(stream_acceptor& listener) {
    auto self = shared_from_this();
    while (!stopped_) {
        boost::system::error_code ec;
        stream_socket socket =
            co_await listener.async_accept(asio::redirect_error(asio::use_awaitable, ec));
        if (stopped_) break;
        if (ec) {
            if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) break;
            // EMFILE and friends: say so once per burst and back off briefly.
            spdlog::warn("{}: accept failed: {}", stats_->spec.text, ec.message());
            asio::steady_timer pause(executor_, std::chrono::milliseconds(100));
            co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            continue;
        }
        ++stats_->connections;
        if (active_ + static_cast<std::size_t>(stats_->open_channels) >= options_.max_connections) {
            ++stats_->failures;
            spdlog::warn("{}: {} connections open, refusing a new one", stats_->spec.text, active_);
            continue;  // socket closes as it goes out of scope
        }
        set_no_delay(socket);
        core::spawn(
            executor_,
            [self, s = std::move(socket)]() mutable { return self->serve(std::move(s)); },
            "local forward connection");
    }
}

asio::awaitable<std::optional<socks_target>> local_forward::socks(stream_socket& socket,
                                                                  socks_handshake& hs,
                                                                  std::string& early) {
    asio::steady_timer deadline(executor_, options_.handshake_timeout);
    bool expired = false;
    deadline.async_wait([&socket, &expired](boost::system::error_code ec) {
        if (!ec) {
            expired = true;
            boost::system::error_code ignored;
            socket.close(ignored);
        }
    });
    std::array<char, 512> buf;
    for (;;) {
        boost::system::error_code ec;
        std::size_t n = co_await socket.async_read_some(
            asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            spdlog::info("{}: SOCKS client went away during the handshake{}", stats_->spec.text,
                         expired ? " (timed out)" : "");
            co_return std::nullopt;
        }
        auto step = hs.feed(std::string_view(buf.data(), n));
        if (!step.reply.empty()) {
            co_await asio::async_write(socket, asio::buffer(step.reply),
                                       asio::redirect_error(asio::use_awaitable, ec));
            if (ec) co_return std::nullopt;
        }
        if (step.state == socks_handshake::status::failed) {
            spdlog::warn("{}: refused a SOCKS client: {}", stats_->spec.text, step.error);
            co_return std::nullopt;
        }
        if (step.state == socks_handshake::status::ready) {
            deadline.cancel();
            early = hs.take_leftover();
            co_return hs.target();
        }
    }
}

asio::awaitable<void> local_forward::serve(stream_socket socket) {
    auto self = shared_from_this();
    ++active_;
    struct leave {
        std::size_t& n;
        ~leave() { --n; }
    } guard{active_};

    const bool is_socks = stats_->spec.kind == forward_kind::dynamic;
    socks_handshake hs(options_.socks_auth);
    std::string early;
    endpoint target = stats_->spec.target;
    if (is_socks) {
        auto t = co_await socks(socket, hs, early);
        if (!t) {
            ++stats_->failures;
            co_return;
        }
        target.host = t->host;
        target.port = t->port;
        target.path.clear();
    }
    auto answer = [&](socks_reply code) -> asio::awaitable<void> {
        if (!is_socks) co_return;
        auto r = hs.final_reply(code);
        boost::system::error_code ec;
        co_await asio::async_write(socket, asio::buffer(r),
                                   asio::redirect_error(asio::use_awaitable, ec));
    };

    spdlog::debug("{}: new connection for {}", stats_->spec.text,
                  core::log_text(target.to_string()));
    const auto outage_deadline = ssh::clock_type::now() + options_.outage_wait;
    auto session = co_await source_.acquire(outage_deadline);
    if (!session || stopped_) {
        ++stats_->failures;
        spdlog::warn("{}: no SSH session within {} ms; closing the connection to {}",
                     stats_->spec.text, options_.outage_wait.count(), target.to_string());
        co_await answer(socks_reply::general_failure);
        close_cleanly(socket);
        co_return;
    }
    auto deadline = ssh::clock_type::now() + options_.open_timeout;
    // (No co_await inside ?: — g++ 12 mishandles the temporaries.)
    core::result<ssh::channel> ch = core::fail(core::errc::invalid_argument, "unset");
    for (int attempt = 0;; ++attempt) {
        if (target.is_unix())
            ch = co_await ssh::channel::open_direct_streamlocal(session, target.path, deadline);
        else
            ch = co_await ssh::channel::open_direct_tcpip(session, target.host, target.port,
                                                          deadline);
        // The session died under the open (a link manager dropped a stalled
        // transport): once, take the session that replaced it, if one comes
        // within the outage wait.
        if (ch || attempt > 0 || stopped_ || ch.error().code != core::errc::disconnected) break;
        auto next = co_await source_.acquire(outage_deadline);
        if (!next || next == session) break;
        session = std::move(next);
        deadline = ssh::clock_type::now() + options_.open_timeout;
    }
    if (!ch) {
        ++stats_->failures;
        stats_->last_error = ch.error().message;
        spdlog::warn("{}: cannot reach {}: {}", stats_->spec.text,
                     core::log_text(target.to_string()), ch.error().message);
        co_await answer(reply_for(ch.error()));
        close_cleanly(socket);
        co_return;
    }
    if (is_socks) {
        auto r = hs.final_reply(socks_reply::succeeded);
        boost::system::error_code ec;
        co_await asio::async_write(socket, asio::buffer(r),
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return;
    }
    spdlog::debug("{}: channel to {} open", stats_->spec.text, core::log_text(target.to_string()));
    start_pump(std::move(*ch), std::move(socket), stats_, std::move(early));
}

}  // namespace tunnel::forward
