#include "link/pooled_transfer.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "core/log_text.hpp"
#include "link/control_request.hpp"
#include "link/link_config.hpp"
#include "link/manager_call.hpp"
#include "sftp/byte_pipe.hpp"

namespace tunnel::link {

namespace {

using local = asio::local::stream_protocol;
using namespace std::chrono_literals;

// How long the manager may take to say whether it opened the channel (it
// waits up to 2 s for a healthy session and 5 s for the channel).
constexpr auto reply_timeout = 10s;

}  // namespace

manager_transfer::manager_transfer(std::string socket_path)
    : socket_(std::move(socket_path)), exec_(socket_) {}

void manager_transfer::name_destination(const std::string& destination, const std::string& name) {
    if (!valid_link_name(name)) return;
    names_[destination] = name;
    exec_.name_destination(destination, name);
}

asio::awaitable<std::optional<core::result<std::unique_ptr<sftp::client>>>>
manager_transfer::open_sftp(const ssh::connect_options& target, sftp::client_options options) {
    const auto destination = target.destination();
    nlohmann::json req{{"cmd", "sftp"}, {"destination", destination}};
    if (auto n = names_.find(destination); n != names_.end()) req["link"] = n->second;
    // No manager, or it went away (or hung): our own connection.
    auto calling = call_manager(socket_, req, reply_timeout);  // g++ 12: no temporaries in co_await
    auto call = co_await std::move(calling);
    if (!call) co_return std::nullopt;
    const auto& reply = call->reply;
    if (!reply.value("ok", false)) {
        spdlog::debug("SFTP not through the manager: {}",
                      core::log_text(reply.value("error", std::string("refused")), 200));
        co_return std::nullopt;
    }
    const auto link_name = reply.value("link", std::string());
    // Nothing is written before the SFTP handshake ends, so a failure up to
    // there still lets the caller connect itself.
    auto pipe =
        std::make_unique<sftp::socket_pipe>(std::move(*call->socket), std::move(call->rest));
    auto opening = sftp::client::open_on(std::move(pipe), destination, options);
    auto c = co_await std::move(opening);
    if (!c) {
        spdlog::debug("SFTP through the manager (link {}) failed before any write: {}",
                      core::log_text(link_name, 64), c.error().message);
        co_return std::nullopt;
    }
    spdlog::debug("SFTP to {} through `tunnel up`, link {}", destination,
                  core::log_text(link_name, 64));
    co_return std::move(*c);
}

asio::awaitable<std::optional<core::result<transfer::command_output>>> manager_transfer::run(
    const ssh::connect_options& target, std::string command, std::chrono::milliseconds timeout) {
    auto out = std::make_shared<transfer::command_output>();
    exec::pooled_request r;
    r.target = &target;
    r.remote_command = std::move(command);
    r.deadline = ssh::clock_type::now() + timeout;
    r.on_stdout = [out](std::string_view d) { out->out.append(d); };
    r.on_stderr = [out](std::string_view d) { out->err.append(d); };
    auto running = exec_.run(std::move(r));
    auto result = co_await std::move(running);
    if (!result) co_return std::nullopt;
    if (!*result) co_return tl::unexpected(result->error());
    if ((*result)->cut_off)
        co_return core::fail(core::errc::timeout,
                             fmt::format("the command did not end within {} ms", timeout.count()));
    out->exit_status = (*result)->exit_status.value_or(-1);
    co_return std::move(*out);
}

}  // namespace tunnel::link
