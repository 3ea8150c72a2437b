#include "link/exec_client.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "core/log_text.hpp"
#include "core/spawn.hpp"
#include "exec/executor.hpp"
#include "link/control_request.hpp"
#include "link/exec_frames.hpp"
#include "link/link_config.hpp"
#include "link/manager_call.hpp"

namespace tunnel::link {

namespace {

using local = asio::local::stream_protocol;
using namespace std::chrono_literals;

// How long the manager may take to say whether it runs the command (it
// waits up to 2 s for a healthy session and 5 s for a channel).
constexpr auto reply_timeout = 10s;

// Stdin to the manager as frames, then EOF; stops when the command is done.
asio::awaitable<void> pump_stdin(std::shared_ptr<local::socket> socket,
                                 std::shared_ptr<exec::input_source> input,
                                 std::shared_ptr<bool> done) {
    boost::system::error_code ec;
    std::string out;
    if (input) {
        for (;;) {
            auto chunk = co_await input->read();
            if (*done) co_return;
            if (!chunk || chunk->empty()) break;
            out.clear();
            for (std::string_view rest = *chunk; !rest.empty();) {
                const auto n = std::min(rest.size(), max_frame_payload);
                append_frame(out, 'i', rest.substr(0, n));
                rest.remove_prefix(n);
            }
            co_await asio::async_write(*socket, asio::buffer(out),
                                       asio::redirect_error(asio::use_awaitable, ec));
            if (ec || *done) co_return;
        }
    }
    out.clear();
    append_frame(out, 'e', {});
    co_await asio::async_write(*socket, asio::buffer(out),
                               asio::redirect_error(asio::use_awaitable, ec));
}

}  // namespace

void manager_exec::name_destination(const std::string& destination, const std::string& name) {
    if (valid_link_name(name)) names_[destination] = name;
}

asio::awaitable<std::optional<core::result<exec::pooled_outcome>>> manager_exec::run(
    exec::pooled_request r) {
    auto ex = co_await asio::this_coro::executor;
    const auto destination = r.target->destination();
    nlohmann::json req{
        {"cmd", "exec"}, {"destination", destination}, {"command", r.remote_command}};
    if (auto n = names_.find(destination); n != names_.end()) req["link"] = n->second;
    // No manager, or it went away (or hung) before it said the command started:
    // our own connection.
    auto calling = call_manager(socket_, req, reply_timeout);  // g++ 12: no temporaries in co_await
    auto call = co_await std::move(calling);
    if (!call) co_return std::nullopt;
    auto socket = std::move(call->socket);
    auto& reply = call->reply;
    std::string buffer = std::move(call->rest);
    boost::system::error_code ec;
    if (!reply.value("ok", false)) {
        const auto why = reply.value("error", std::string("refused"));
        // Refusals (no link, link down, too many control connections, a bad
        // request) ran nothing; only a failed exec request may have reached the host.
        if (!reply.value("maybe_started", false)) {
            spdlog::debug("not through the manager: {}", core::log_text(why, 200));
            co_return std::nullopt;
        }
        co_return core::fail(core::errc::channel_failed,
                             fmt::format("through `tunnel up` (link {}): {}",
                                         core::log_text(reply.value("link", destination), 64),
                                         core::log_text(why, 200)));
    }
    spdlog::debug("{} through `tunnel up`, link {}", destination,
                  core::log_text(reply.value("link", std::string()), 64));

    auto done = std::make_shared<bool>(false);
    core::spawn(ex, pump_stdin(socket, r.input, done), "pooled exec stdin");
    exec::pooled_outcome outcome;
    bool cut_off = false;
    asio::steady_timer timer(ex);
    if (r.deadline != ssh::time_point::max()) {
        timer.expires_at(r.deadline);
        timer.async_wait([socket, &cut_off](boost::system::error_code e) {
            if (e) return;
            cut_off = true;  // the manager sees the close and kills the command
            boost::system::error_code ignored;
            socket->close(ignored);
        });
    }
    struct stop_guard {
        std::shared_ptr<bool> done;
        std::shared_ptr<exec::input_source> input;
        asio::steady_timer& timer;
        ~stop_guard() {
            *done = true;
            if (input) input->cancel();
            timer.cancel();
        }
    } guard{done, r.input, timer};

    char chunk[64 * 1024];
    for (;;) {
        bool too_big = false;
        while (auto f = take_frame(buffer, too_big)) {
            if (f->type == 'o') {
                if (r.on_stdout) r.on_stdout(f->payload);
            } else if (f->type == 'r') {
                if (r.on_stderr) r.on_stderr(f->payload);
            } else if (f->type == 'x') {
                auto end = nlohmann::json::parse(f->payload, nullptr, false);
                if (!end.is_object())
                    co_return core::fail(core::errc::protocol_error,
                                         "the manager's exit frame is not a JSON object");
                if (end.contains("error"))
                    co_return core::fail(
                        core::errc::disconnected,
                        fmt::format("{} while running the command; it may have run partly",
                                    core::log_text(end.value("error", std::string()), 200)));
                if (auto s = end.find("exit_status"); s != end.end() && s->is_number_integer())
                    outcome.exit_status = s->get<int>();
                if (auto s = end.find("signal"); s != end.end() && s->is_string())
                    outcome.signal = s->get<std::string>();
                co_return outcome;
            } else {
                co_return core::fail(core::errc::protocol_error,
                                     "the manager sent a frame of unknown type");
            }
        }
        if (too_big)
            co_return core::fail(core::errc::protocol_error, "the manager sent an oversized frame");
        const auto got = co_await socket->async_read_some(
            asio::buffer(chunk), asio::redirect_error(asio::use_awaitable, ec));
        if (cut_off) {
            outcome.cut_off = true;
            co_return outcome;
        }
        if (ec)
            co_return core::fail(core::errc::disconnected,
                                 fmt::format("`tunnel up` went away while running the command on "
                                             "{}; it may have run partly",
                                             destination));
        buffer.append(chunk, got);
    }
}

}  // namespace tunnel::link
