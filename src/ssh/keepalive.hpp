// ServerAliveInterval / ServerAliveCountMax for a client session: what one
// interval without a sign of the peer does. session::wait() calls tick() when
// an interval passed without the socket turning readable, and heard() when it
// did.
//
// libssh's keepalive (ssh_send_keepalive: the global request
// keepalive@openssh.com with want-reply) goes through its one-at-a-time
// global-request state, and three things follow that this class handles:
//   * The answer is often read inside libssh (a packet loop that a channel
//     call, or the keepalive call itself, runs), so our wait never sees the
//     socket readable. The kernel's count of bytes received (TCP_INFO) does:
//     bytes since the last tick count as an answer.
//   * A call that finds the last request answered only collects that answer
//     and sends nothing: without a second call every other tick sent no
//     keepalive, and ServerAliveCountMax=1 ended healthy sessions after two
//     intervals (OpenSSH sshd, dropbear; tests/integration/interop_forward_test.cpp).
//   * tinysshd answers every global request with SSH_MSG_UNIMPLEMENTED, which
//     libssh does not take as an answer: its state stays pending forever and
//     it sends no keepalive again. Once a request was answered that way
//     (bytes came back, yet libssh sends nothing), keepalives cannot prove the
//     peer alive any more: the session keeps to SSH_MSG_IGNORE (for NATs and
//     firewalls) and stops counting, rather than ending a healthy session.
#pragma once

#include <libssh/libssh.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "core/error.hpp"

namespace tunnel::ssh {

// The kernel's byte counts for a TCP socket (TCP_INFO); nullopt for any other
// fd (a ProxyCommand pipe, the socketpair of a ProxyJump hop).
struct socket_counters {
    std::uint64_t received = 0;  // bytes
    std::uint64_t written = 0;   // grows when anything is written to the socket
};
[[nodiscard]] std::optional<socket_counters> read_socket_counters(int fd) noexcept;

class keepalive {
  public:
    // The peer was heard from (our wait saw the socket readable).
    void heard() noexcept { unanswered_ = 0; }
    // One interval passed without hearing from the peer: sends a keepalive,
    // or fails with disconnected once `count_max` in a row went unanswered.
    // `destination` and `interval` are for the message only.
    [[nodiscard]] core::result<void> tick(ssh_session session, int fd, int count_max,
                                          std::chrono::seconds interval,
                                          const std::string& destination);
    // libssh can send no more keepalives on this session (see above).
    [[nodiscard]] bool blocked() const noexcept { return blocked_; }

  private:
    int unanswered_ = 0;
    std::optional<std::uint64_t> last_received_;
    bool sent_last_tick_ = false;
    bool blocked_ = false;
};

}  // namespace tunnel::ssh
