// One real SSH server of a chosen implementation, behind one interface, for
// the interop suite (tests/integration/interop_*_test.cpp): each scenario runs
// against OpenSSH sshd, dropbear and tinysshd alike.
//
//   auto server = interop_server::start(server_kind::dropbear);
//   if (!server && server.error().code == core::errc::not_found)
//       GTEST_SKIP() << server.error().message;        // not installed here
//   run_tunnel({"exec", ...server->client_flags("-p"), "root@127.0.0.1", "--", "true"});
//
// Every server logs in root with an ed25519 key of its own and checks host
// keys strictly (StrictHostKeyChecking=yes, a known_hosts file with only its
// key). Sessions see the machine's files (dropbear and tinysshd bind a home
// of their own on /root, nothing else), so a test can write a file locally
// and name it in a remote command.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/error.hpp"
#include "support/dropbear_fixture.hpp"
#include "support/sshd_fixture.hpp"
#include "support/tinysshd_fixture.hpp"

namespace tunnel::test {

enum class server_kind { openssh, dropbear, tinysshd };

// "openssh", "dropbear", "tinysshd": test-name suffixes.
[[nodiscard]] std::string_view name_of(server_kind kind) noexcept;

class interop_server {
  public:
    // errc::not_found when this implementation is not installed or cannot run
    // here (tests skip on it); another error when it should have worked.
    [[nodiscard]] static core::result<interop_server> start(server_kind kind);

    [[nodiscard]] server_kind kind() const noexcept { return kind_; }
    [[nodiscard]] std::string_view name() const noexcept { return name_of(kind_); }
    [[nodiscard]] std::uint16_t port() const noexcept;
    [[nodiscard]] const std::string& dir() const noexcept;
    [[nodiscard]] std::string client_key_path() const;
    // `ssh-ed25519 AAAA...`
    [[nodiscard]] std::string host_pubkey() const;
    // The end of the server's log, for failure messages.
    [[nodiscard]] std::string log() const;

    // -F /dev/null PORT_OPTION PORT -i KEY -o UserKnownHostsFile=...
    // -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes
    // -o BatchMode=yes, for `tunnel` and for OpenSSH's `ssh`/`sftp`.
    // PORT_OPTION: "-p" (exec, forward, sync) or "-P" (cp). With `via_port`,
    // the client connects there instead (a fault_proxy in front of the
    // server) and knows the server's host key under that port.
    [[nodiscard]] std::vector<std::string> client_flags(std::string_view port_option = "-p",
                                                        std::uint16_t via_port = 0) const;

    // What the implementation does not offer, with the reason to skip on;
    // empty when it does. (tinysshd: "no port forwarding", man tinysshd.)
    [[nodiscard]] std::string cannot_forward_local() const;
    [[nodiscard]] std::string cannot_forward_remote() const;

  private:
    using fixture = std::variant<sshd_fixture, dropbear_fixture, tinysshd_fixture>;
    interop_server(server_kind kind, fixture server) : kind_(kind), server_(std::move(server)) {}

    server_kind kind_;
    fixture server_;
};

}  // namespace tunnel::test
