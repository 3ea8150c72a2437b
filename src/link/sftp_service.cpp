#include "link/sftp_service.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/spawn.hpp"
#include "link/pooled_session.hpp"
#include "ssh/channel.hpp"

namespace tunnel::link {

namespace {

using local = asio::local::stream_protocol;
using namespace std::chrono_literals;

// The channel's receive side, as the SFTP client's own channel has it
// (sftp/client.cpp): large windows, so bulk downloads are not window-bound.
constexpr std::size_t channel_buffer = 32u << 20;
constexpr std::size_t channel_read_chunk = 8u << 20;
// Read no further ahead of the channel than this from the caller.
constexpr std::size_t max_pending = 4u << 20;

struct caller_side {
    std::string pending;  // caller -> channel, not yet written
    bool gone = false;    // the caller closed (or failed): close the channel
    bool done = false;    // the relay ended: the reader stops
};

asio::awaitable<void> read_caller(std::shared_ptr<local::socket> socket,
                                  std::shared_ptr<caller_side> in,
                                  std::shared_ptr<ssh::session> s) {
    std::string chunk(256 * 1024, '\0');
    for (;;) {
        while (in->pending.size() > max_pending && !in->done) {
            asio::steady_timer t(socket->get_executor(), 2ms);
            co_await t.async_wait(asio::use_awaitable);
        }
        if (in->done) co_return;
        boost::system::error_code ec;
        const auto n = co_await socket->async_read_some(
            asio::buffer(chunk), asio::redirect_error(asio::use_awaitable, ec));
        if (in->done) co_return;
        if (ec) {
            in->gone = true;
            s->notify();
            co_return;
        }
        in->pending.append(chunk.data(), n);
        s->notify();
    }
}

}  // namespace

asio::awaitable<void> serve_sftp(std::shared_ptr<local::socket> socket, std::shared_ptr<manager> m,
                                 control_request req, std::string leftover) {
    boost::system::error_code ec;
    auto picking = pick_pooled_session(m, req);
    auto pick = co_await std::move(picking);
    auto l = pick.l;
    std::string refused = pick.refused;
    std::optional<ssh::channel> ch;
    if (refused.empty()) {
        const auto deadline = ssh::clock_type::now() + 5s;
        auto c = co_await ssh::channel::open_session(pick.s, deadline);
        if (c) {
            auto sub = c->request_subsystem("sftp", deadline);
            auto started = co_await std::move(sub);
            if (started)
                ch.emplace(std::move(*c));
            else
                refused =
                    fmt::format("link {}: sftp subsystem: {}", l->name(), started.error().message);
        } else {
            refused = fmt::format("link {}: {}", l->name(), c.error().message);
        }
    }
    if (!refused.empty()) {
        if (l) l->count_sftp(false);
        spdlog::debug("pooled sftp refused: {}", refused);
        auto line = pooled_fallback_line(refused, req.id);
        co_await asio::async_write(*socket, asio::buffer(line),
                                   asio::redirect_error(asio::use_awaitable, ec));
        co_return;
    }
    l->count_sftp(true);
    ch->state().buffer_cap = channel_buffer;
    ch->state().read_chunk = channel_read_chunk;
    std::string out = pooled_reply_line({{"ok", true}, {"link", l->name()}}, req.id);
    co_await asio::async_write(*socket, asio::buffer(out),
                               asio::redirect_error(asio::use_awaitable, ec));
    out.clear();
    if (ec) {
        ch->close();
        co_return;
    }
    auto in = std::make_shared<caller_side>();
    in->pending = std::move(leftover);
    core::spawn(socket->get_executor(), read_caller(socket, in, pick.s), "pooled sftp input");
    auto& st = ch->state();
    for (;;) {
        ch->drain();
        const bool had_out = !st.out.empty();
        if (had_out) {
            // The caller reads all the time (its SFTP client never blocks on us).
            out.swap(st.out);
            st.out.clear();
            co_await asio::async_write(*socket, asio::buffer(out),
                                       asio::redirect_error(asio::use_awaitable, ec));
            out.clear();
            if (ec) in->gone = true;
        }
        if (in->gone) break;  // the caller went away: its SFTP session ends
        bool window_closed = false;
        while (!in->pending.empty() && !st.closed) {
            auto w = ch->write_some(in->pending);
            if (!w) {
                in->gone = true;
                break;
            }
            if (*w == 0) {
                window_closed = true;
                break;
            }
            in->pending.erase(0, *w);
        }
        if (had_out) continue;           // more may have arrived while we wrote
        if (st.closed || st.eof) break;  // the server ended the session, all of it relayed
        // Blocked on the server's window: its adjust may be read by another
        // channel's libssh call (no callback), so look again soon.
        const auto wake = window_closed ? ssh::clock_type::now() + 20ms : ssh::time_point::max();
        auto w = co_await ch->owner().wait(wake);
        if (!w && w.error().code != core::errc::timeout) {
            spdlog::debug("pooled sftp on link {}: {}", l->name(), w.error().message);
            break;
        }
    }
    in->done = true;
    ch->close();
    socket->shutdown(local::socket::shutdown_both, ec);
    socket->close(ec);
}

}  // namespace tunnel::link
