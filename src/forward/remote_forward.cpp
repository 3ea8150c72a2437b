#include "forward/remote_forward.hpp"

#include <libssh/libssh.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/spawn.hpp"
#include "forward/local_socket.hpp"
#include "forward/pump.hpp"

namespace tunnel::forward {

asio::awaitable<core::result<uint16_t>> remote_forward::request(
    std::shared_ptr<ssh::session> session, ssh::time_point deadline) {
    const auto& spec = stats_->spec;
    // OpenSSH sends "localhost" for no bind address (loopback only under
    // GatewayPorts no) and "" for every interface.
    std::string address = spec.listen.host.empty()  ? "localhost"
                          : spec.listen.host == "*" ? ""
                                                    : spec.listen.host;
    const int wanted = stats_->bound_port.value_or(spec.listen.port);
    ssh_session raw = session->native();
    session->expect_forwarded();  // the connections the server will open

    // libssh keeps one global-request state per session: a keepalive's
    // unconsumed answer can be handed to the next request. A refusal is
    // therefore asked once more before it is believed.
    std::string why;
    for (int attempt = 0; attempt < 3; ++attempt) {
        int port_to_ask = attempt == 2 && stats_->bound_port && spec.listen.port == 0 ? 0 : wanted;
        int bound = 0;
        auto rc = co_await session->drive(
            [&] {
                return ssh_channel_listen_forward(raw, address.empty() ? nullptr : address.c_str(),
                                                  port_to_ask, &bound);
            },
            SSH_AGAIN, deadline);
        if (!rc) co_return tl::unexpected(rc.error());
        if (*rc == SSH_OK) {
            uint16_t port = port_to_ask != 0 ? static_cast<uint16_t>(port_to_ask)
                                             : static_cast<uint16_t>(bound);
            if (port == 0)
                co_return core::fail(
                    core::errc::protocol_error,
                    fmt::format("{}: the server did not say which port it allocated", spec.text));
            stats_->bound_port = port;
            co_return port;
        }
        why = session->last_error();
        if (!session->alive()) break;
    }
    // A relay bind address carries the publish parameters after ';' (htpasswd
    // hashes with --access basic): the message names the address only.
    const std::string shown = address.empty() ? "*" : address.substr(0, address.find(';'));
    co_return core::fail(
        core::errc::channel_failed,
        fmt::format("{}: {} refused to listen on {}:{} ({}); check AllowTcpForwarding/GatewayPorts "
                    "on the server and that the port is free there",
                    spec.text, session->options().destination(), shown, wanted, why));
}

bool remote_forward::owns(int port) const noexcept {
    if (stats_->bound_port) return *stats_->bound_port == port;
    return stats_->spec.listen.port == port;
}

void remote_forward::carry(ssh::channel channel, std::chrono::milliseconds connect_timeout) {
    ++stats_->connections;
    auto executor = channel.owner().executor();
    core::spawn(
        executor,
        [stats = stats_, ch = std::move(channel), executor,
         connect_timeout]() mutable -> asio::awaitable<void> {
            auto s = co_await connect_stream(executor, stats->spec.target, connect_timeout);
            if (!s) {
                ++stats->failures;
                stats->last_error = s.error().message;
                spdlog::warn("{}: {}", stats->spec.text, s.error().message);
                ch.close();
                co_return;
            }
            spdlog::debug("{}: connected to {}", stats->spec.text, stats->spec.target.to_string());
            start_pump(std::move(ch), std::move(*s), stats);
        },
        "remote forward connect");
}

}  // namespace tunnel::forward
