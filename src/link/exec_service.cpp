#include "link/exec_service.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/log_text.hpp"
#include "core/spawn.hpp"
#include "exec/executor.hpp"
#include "link/exec_frames.hpp"
#include "link/pooled_session.hpp"
#include "ssh/channel.hpp"

namespace tunnel::link {

namespace {

using local = asio::local::stream_protocol;
using namespace std::chrono_literals;

// What the caller sent after the request: stdin, its EOF, signals.
struct caller_input {
    std::string pending;
    bool eof = false;
    bool gone = false;  // the connection closed (or sent garbage): kill the command
    std::string signal;
    bool done = false;  // the command ended: the reader stops
};

asio::awaitable<void> read_input(std::shared_ptr<local::socket> socket,
                                 std::shared_ptr<caller_input> in, std::string buffer,
                                 std::shared_ptr<ssh::session> s) {
    char chunk[64 * 1024];
    for (;;) {
        bool too_big = false;
        while (auto f = take_frame(buffer, too_big)) {
            if (f->type == 'i' && !in->eof)
                in->pending += f->payload;
            else if (f->type == 'e')
                in->eof = true;
            else if (f->type == 'k' && f->payload.size() <= 16)
                in->signal = f->payload;
            else
                in->gone = true;
        }
        if (too_big) in->gone = true;
        s->notify();
        if (in->gone || in->done) co_return;
        // Bounded: read no further ahead of the channel than 1 MiB.
        while (in->pending.size() > (1u << 20) && !in->done && !in->gone) {
            asio::steady_timer t(socket->get_executor(), 5ms);
            co_await t.async_wait(asio::use_awaitable);
        }
        boost::system::error_code ec;
        const auto n = co_await socket->async_read_some(
            asio::buffer(chunk), asio::redirect_error(asio::use_awaitable, ec));
        if (in->done) co_return;
        if (ec) {
            in->gone = true;
            s->notify();
            co_return;
        }
        buffer.append(chunk, n);
    }
}

// Frames of `data` (split at max_frame_payload) appended to `out`.
void frames_of(std::string& out, char type, std::string_view data) {
    while (!data.empty()) {
        const auto n = std::min(data.size(), max_frame_payload);
        append_frame(out, type, data.substr(0, n));
        data.remove_prefix(n);
    }
}

}  // namespace

exec_ending ending_of(const nlohmann::json& end) {
    exec_ending e;
    if (auto error = end.find("error"); error != end.end() && error->is_string()) {
        e.message = fmt::format("tunnel: {} while running the command; it may have run partly",
                                error->get<std::string>());
        return e;  // 255, as `tunnel exec` reports a lost connection
    }
    exec::exec_result r;
    r.exit_status = 255;  // neither a status nor a signal: as the CLI reports it
    if (auto s = end.find("exit_status"); s != end.end() && s->is_number_integer())
        r.exit_status = s->get<int>();
    if (auto s = end.find("signal"); s != end.end() && s->is_string())
        r.signal = s->get<std::string>();
    e.exit_code = r.exit_code();
    return e;
}

asio::awaitable<void> serve_exec(std::shared_ptr<local::socket> socket, std::shared_ptr<manager> m,
                                 control_request req, std::string leftover) {
    boost::system::error_code ec;
    auto picking = pick_pooled_session(m, req);
    auto pick = co_await std::move(picking);
    auto l = pick.l;
    auto s = pick.s;
    std::string refused = pick.refused;
    std::optional<ssh::channel> ch;
    if (refused.empty()) {
        const auto deadline = ssh::clock_type::now() + 5s;
        auto c = co_await ssh::channel::open_session(s, deadline);
        if (!c)
            refused = fmt::format("link {}: {}", l->name(), c.error().message);
        else
            ch.emplace(std::move(*c));
    }
    if (!refused.empty()) {
        if (l) l->count_exec(false);
        spdlog::debug("pooled exec refused: {}", refused);
        auto line = pooled_fallback_line(refused, req.id);
        co_await asio::async_write(*socket, asio::buffer(line),
                                   asio::redirect_error(asio::use_awaitable, ec));
        co_return;
    }
    {
        auto requesting = ch->request_exec(req.command, ssh::clock_type::now() + 5s);
        auto e = co_await std::move(requesting);
        if (!e) {
            // The request may have reached the server: do not let the caller run it again.
            l->count_exec(false);
            nlohmann::json refusal{
                {"ok", false}, {"maybe_started", true}, {"error", e.error().message}};
            if (req.from_args) {  // the front prints what `tunnel exec` would
                refusal["exit_code"] = 255;
                refusal["message"] = fmt::format("tunnel: through `tunnel up` (link {}): {}",
                                                 l->name(), e.error().message);
            }
            auto line = pooled_reply_line(std::move(refusal), req.id);
            co_await asio::async_write(*socket, asio::buffer(line),
                                       asio::redirect_error(asio::use_awaitable, ec));
            co_return;
        }
    }
    l->count_exec(true);
    std::string out = pooled_reply_line({{"ok", true}, {"link", l->name()}}, req.id);

    auto in = std::make_shared<caller_input>();
    core::spawn(socket->get_executor(), read_input(socket, in, std::move(leftover), s),
                "pooled exec input");
    auto& st = ch->state();
    nlohmann::json end;
    bool eof_sent = false;
    for (;;) {
        ch->drain();
        frames_of(out, 'o', st.out);
        st.out.clear();
        frames_of(out, 'r', st.err);
        st.err.clear();
        if (!out.empty()) {
            co_await asio::async_write(*socket, asio::buffer(out),
                                       asio::redirect_error(asio::use_awaitable, ec));
            out.clear();
            if (ec) in->gone = true;
        }
        if (in->gone) {
            // The caller went away: nothing may keep running on its behalf.
            ch->send_signal("KILL");
            ch->close();
            in->done = true;
            co_return;
        }
        if (!in->signal.empty()) {
            ch->send_signal(in->signal.c_str());
            in->signal.clear();
        }
        while (!in->pending.empty() && !st.closed) {
            auto w = ch->write_some(in->pending);
            if (!w || *w == 0) break;
            in->pending.erase(0, *w);
        }
        if (in->eof && in->pending.empty() && !eof_sent && !st.closed) {
            ch->send_eof();
            eof_sent = true;
        }
        if (ch->finished()) break;
        auto w = co_await ch->owner().wait(ssh::time_point::max());
        if (!w) {
            end = {{"error", fmt::format("link {}: {}", l->name(), w.error().message)}};
            break;
        }
    }
    in->done = true;
    // Output that arrived while the last frames were being written (the
    // channel finished meanwhile) goes out before the end: found by a 2.7 MB
    // exec that lost its tail.
    ch->drain();
    frames_of(out, 'o', st.out);
    st.out.clear();
    frames_of(out, 'r', st.err);
    st.err.clear();
    if (end.is_null()) {
        if (st.exit_status) end["exit_status"] = *st.exit_status;
        if (st.exit_signal) end["signal"] = *st.exit_signal;
        if (end.is_null()) end = nlohmann::json::object();
    }
    if (req.from_args) {
        const auto ending = ending_of(end);
        end["exit_code"] = ending.exit_code;
        if (ending.message) end["message"] = *ending.message;
    }
    append_frame(out, 'x', end.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    co_await asio::async_write(*socket, asio::buffer(out),
                               asio::redirect_error(asio::use_awaitable, ec));
    socket->shutdown(local::socket::shutdown_both, ec);
    socket->close(ec);
}

}  // namespace tunnel::link
