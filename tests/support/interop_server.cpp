#include "support/interop_server.hpp"
#include "support/tunnel_cli.hpp"

#include "support/process.hpp"

namespace tunnel::test {

std::string_view name_of(server_kind kind) noexcept {
    switch (kind) {
        case server_kind::openssh:
            return "openssh";
        case server_kind::dropbear:
            return "dropbear";
        case server_kind::tinysshd:
            return "tinysshd";
    }
    return "unknown";
}

core::result<interop_server> interop_server::start(server_kind kind) {
    switch (kind) {
        case server_kind::openssh: {
            // sshd_fixture fails (rather than skipping) without sshd: the
            // rest of the suite needs it anyway.
            auto s = sshd_fixture::start();
            if (!s) return tl::unexpected(s.error());
            return interop_server(kind, std::move(*s));
        }
        case server_kind::dropbear: {
            auto s = dropbear_fixture::start();
            if (!s) return tl::unexpected(s.error());
            return interop_server(kind, std::move(*s));
        }
        case server_kind::tinysshd: {
            auto s = tinysshd_fixture::start();
            if (!s) return tl::unexpected(s.error());
            return interop_server(kind, std::move(*s));
        }
    }
    return core::fail(core::errc::invalid_argument, "unknown server kind");
}

std::uint16_t interop_server::port() const noexcept {
    return std::visit([](const auto& s) { return s.port(); }, server_);
}

const std::string& interop_server::dir() const noexcept {
    return std::visit([](const auto& s) -> const std::string& { return s.dir(); }, server_);
}

std::string interop_server::client_key_path() const {
    return std::visit([](const auto& s) { return s.client_key_path(); }, server_);
}

std::string interop_server::host_pubkey() const {
    return std::visit([](const auto& s) { return s.host_pubkey(); }, server_);
}

std::string interop_server::log() const {
    const auto text = std::visit([](const auto& s) { return s.log(); }, server_);
    constexpr std::size_t max_bytes = 4000;
    return text.size() <= max_bytes ? text : "..." + text.substr(text.size() - max_bytes);
}

std::vector<std::string> interop_server::client_flags(std::string_view port_option,
                                                      std::uint16_t via_port) const {
    std::string known_hosts =
        std::visit([](const auto& s) { return s.known_hosts_path(); }, server_);
    std::uint16_t connect_port = port();
    if (via_port != 0) {
        connect_port = via_port;
        known_hosts = dir() + "/known_hosts_via_" + std::to_string(via_port);
        (void)write_text_file(
            known_hosts, "[127.0.0.1]:" + std::to_string(via_port) + " " + host_pubkey() + "\n");
    }
    return strict_client_flags(port_option, connect_port, client_key_path(), known_hosts);
}

std::string interop_server::cannot_forward_local() const {
    if (kind_ == server_kind::tinysshd)
        return "tinysshd has no port forwarding (man tinysshd: \"doesn't have features such: ... "
               "port forwarding\"): it refuses every channel but one session";
    return {};
}

std::string interop_server::cannot_forward_remote() const {
    if (kind_ == server_kind::tinysshd)
        return "tinysshd has no port forwarding (man tinysshd); it answers tcpip-forward with "
               "SSH_MSG_UNIMPLEMENTED, which libssh 0.10 does not take as an answer, so tunnel "
               "reports the -R as failed only at its 15 s open deadline (docs/interop.md)";
    return {};
}

}  // namespace tunnel::test
