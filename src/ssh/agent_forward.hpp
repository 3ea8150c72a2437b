// The client side of OpenSSH agent forwarding (ssh -A, ForwardAgent):
//
// * a session channel that will run a shell or command first sends
//   `auth-agent-req@openssh.com` (request_agent_forwarding), when the
//   session's options ask for it and the local agent socket is there;
// * the server then opens an `auth-agent@openssh.com` channel each time a
//   program on its side talks to $SSH_AUTH_SOCK. libssh 0.10 hands those to
//   `ssh_callbacks_struct::channel_open_request_auth_agent_function`: the
//   callback connects a Unix socket to the local agent (a local connect that
//   completes at once or fails) and returns a new channel, which libssh
//   confirms; if the agent cannot be reached the open is refused, so the
//   program on the server gets an error at once;
// * the callback only records the channel and socket; a handler posted to the
//   session's executor starts a channel pump for each (ssh/channel_pump: the
//   channel's window, bounded buffers, nothing blocks the session).
//
// Agent channels the server opens on a session where nothing asked for
// forwarding are refused (and logged: a server that does this is trying to
// use your keys), as OpenSSH does.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/asio.hpp"
#include "core/error.hpp"
#include "ssh/agent_forward_config.hpp"
#include "ssh/handles.hpp"

namespace tunnel::ssh {

class channel;
class session;
class pump_control;

// Held while the channel that asked for agent forwarding runs. When the last
// grant of a session goes, its agent channels are closed and new ones are
// refused: a program left behind on the host cannot use the agent after the
// command that forwarded it has ended. Empty when nothing was forwarded.
class agent_grant {
  public:
    agent_grant() = default;
    explicit agent_grant(std::weak_ptr<session> s) : session_(std::move(s)) {}
    agent_grant(agent_grant&& o) noexcept : session_(std::exchange(o.session_, {})) {}
    agent_grant& operator=(agent_grant&& o) noexcept;
    agent_grant(const agent_grant&) = delete;
    agent_grant& operator=(const agent_grant&) = delete;
    ~agent_grant();

    [[nodiscard]] bool active() const noexcept { return !session_.expired(); }
    void release() noexcept;

  private:
    std::weak_ptr<session> session_;
};

// Sends `auth-agent-req@openssh.com` on `ch` (a session channel, before its
// exec or shell request) when `forward_agent` (connect_options) is set, and
// returns the grant to keep while the channel runs. Without a local agent it
// warns once ("...; continuing without agent forwarding"), sends nothing and
// returns an empty grant: that is not an error. Fails only when the request
// cannot be sent (the connection is gone).
[[nodiscard]] asio::awaitable<core::result<agent_grant>> request_agent_forwarding(
    channel& ch, std::optional<std::string> forward_agent,
    std::chrono::steady_clock::time_point deadline);

// Owned by its session (see session::agent()); everything runs on the
// session's executor.
class agent_forwarder {
  public:
    // Agent channels open at once per session; more are refused.
    static constexpr std::size_t max_channels = 32;

    explicit agent_forwarder(session& owner);
    ~agent_forwarder();
    agent_forwarder(const agent_forwarder&) = delete;
    agent_forwarder& operator=(const agent_forwarder&) = delete;

    // From now on, agent channels the server opens are connected to
    // `socket_path`, until every grant() is released.
    [[nodiscard]] agent_grant grant(std::string socket_path);
    void release() noexcept;
    [[nodiscard]] bool enabled() const noexcept { return grants_ > 0; }
    // Agent channels being served now, and in all.
    [[nodiscard]] std::size_t active() const noexcept { return *active_; }
    [[nodiscard]] std::size_t served() const noexcept { return served_; }
    // Agent channels refused: not asked for, over the cap, or no agent.
    [[nodiscard]] std::size_t refused() const noexcept { return refused_; }

    // Frees channels not yet handed to a pump; the session calls this before
    // libssh frees its channels.
    void release_pending() noexcept;

    // Internal: starts a pump for each channel the callback accepted (posted
    // to the session's executor, outside libssh's packet loop).
    void start_pending();

  private:
    struct pending_channel {
        channel_handle channel;
        int fd = -1;
    };
    static ssh_channel on_open(ssh_session s, void* self);
    ssh_channel open_channel(ssh_session s);

    session& owner_;
    ssh_callbacks_struct callbacks_{};
    std::string socket_path_;
    unsigned grants_ = 0;
    bool ever_enabled_ = false;
    std::vector<std::weak_ptr<pump_control>> pumps_;
    std::vector<pending_channel> pending_;
    bool start_posted_ = false;
    std::shared_ptr<std::size_t> active_ = std::make_shared<std::size_t>(0);
    std::size_t served_ = 0;
    std::size_t refused_ = 0;
    bool warned_unrequested_ = false;
    bool warned_agent_ = false;
    bool warned_cap_ = false;
};

}  // namespace tunnel::ssh
