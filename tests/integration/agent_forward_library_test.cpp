// Agent forwarding in libtunnel's client session, against an SSH server that
// opens `auth-agent@openssh.com` channels whenever it likes: a libssh 0.10
// server (the real server side of the library the relay uses) in a thread,
// over a socketpair. sshd only opens agent channels when asked, so it cannot
// show that a channel nobody asked for is refused; this server can. The
// agent behind the forwarding is a real ssh-agent.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>
#include <utility>

#include <gtest/gtest.h>

#include <libssh/libssh.h>
#include <libssh/server.h>

#include "core/asio.hpp"
#include "ssh/agent_forward.hpp"
#include "ssh/channel.hpp"
#include "ssh/session.hpp"
#include "support/process.hpp"
#include "support/ssh_agent_fixture.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;

struct probe_result {
    int open_rc = -99;    // ssh_channel_open_auth_agent's answer
    int reply_type = -1;  // the first agent reply's message type (12: identities answer)
    std::string failure;  // what went wrong in the server before the probe
};

// Serves one session on `fd` (blocking libssh): auth none, a session channel
// and its exec request; then opens an agent channel to the client and, if
// the client accepts, asks the agent behind it for its identities.
void serve(int fd, probe_result& out) {
    ssh_bind bind = ssh_bind_new();
    ssh_key key = nullptr;
    ssh_session s = ssh_new();
    ssh_channel session_channel = nullptr;
    auto cleanup = [&] {
        if (session_channel) ssh_channel_free(session_channel);
        ssh_disconnect(s);
        ssh_free(s);
        ssh_bind_free(bind);
        ssh_key_free(key);
    };
    bool imported = false;
    if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) == SSH_OK &&
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_IMPORT_KEY, key) == SSH_OK) {
        key = nullptr;  // the bind owns it now
        imported = true;
    }
    if (!imported || ssh_bind_accept_fd(bind, s, fd) != SSH_OK) {
        out.failure = "cannot set up the server";
        ::close(fd);
        cleanup();
        return;
    }
    ssh_set_auth_methods(s, SSH_AUTH_METHOD_NONE);
    if (ssh_handle_key_exchange(s) != SSH_OK) {
        out.failure = std::string("key exchange: ") + ssh_get_error(s);
        cleanup();
        return;
    }
    for (bool exec = false; !exec;) {
        ssh_message m = ssh_message_get(s);
        if (!m) {
            out.failure = std::string("client left: ") + ssh_get_error(s);
            cleanup();
            return;
        }
        const int type = ssh_message_type(m);
        const int subtype = ssh_message_subtype(m);
        if (type == SSH_REQUEST_AUTH && subtype == SSH_AUTH_METHOD_NONE) {
            ssh_message_auth_reply_success(m, 0);
        } else if (type == SSH_REQUEST_CHANNEL_OPEN && subtype == SSH_CHANNEL_SESSION) {
            session_channel = ssh_message_channel_request_open_reply_accept(m);
        } else if (type == SSH_REQUEST_CHANNEL && subtype == SSH_CHANNEL_REQUEST_EXEC) {
            ssh_message_channel_request_reply_success(m);
            exec = true;
        } else {
            ssh_message_reply_default(m);
        }
        ssh_message_free(m);
    }

    ssh_channel agent = ssh_channel_new(s);
    out.open_rc = ssh_channel_open_auth_agent(agent);
    if (out.open_rc == SSH_OK) {
        const unsigned char request_identities[5] = {0, 0, 0, 1, 11};
        ssh_channel_write(agent, request_identities, sizeof request_identities);
        unsigned char head[5];
        std::size_t got = 0;
        while (got < sizeof head) {
            int n = ssh_channel_read_timeout(agent, head + got,
                                             static_cast<uint32_t>(sizeof head - got), 0, 5000);
            if (n <= 0) break;
            got += static_cast<std::size_t>(n);
        }
        if (got == sizeof head) out.reply_type = head[4];
        ssh_channel_send_eof(agent);
        ssh_channel_close(agent);
    }
    ssh_channel_free(agent);
    ssh_channel_request_send_exit_status(session_channel, 0);
    ssh_channel_send_eof(session_channel);
    ssh_channel_close(session_channel);
    ssh_blocking_flush(s, 2000);
    cleanup();
}

asio::awaitable<core::result<ssh::byte_stream>> stream_of(int fd) {
    co_return ssh::byte_stream{fd, nullptr};
}

struct client_outcome {
    std::string error;
    std::optional<int> exit_status;
    std::size_t served = 0;
    std::size_t refused = 0;
};

// Connects over `fd`, opens a session channel, asks for agent forwarding
// when `request` (to `agent_socket`), runs a command and waits for its end.
client_outcome run_client(int fd, std::optional<std::string> agent_socket, bool request,
                          const std::function<void()>& before_exec = {}) {
    ssh::connect_options o;
    o.host = "probe";
    o.user = "tester";
    o.use_agent = false;
    o.batch_mode = true;
    o.host_keys = ssh::host_key_policy::accept_any;
    o.connect_timeout = 10s;
    o.forward_agent = agent_socket;
    o.open_stream = [fd](asio::any_io_executor, ssh::time_point) { return stream_of(fd); };

    client_outcome out;
    asio::io_context io;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            const auto deadline = std::chrono::steady_clock::now() + 20s;
            auto connecting = ssh::session::connect(io.get_executor(), o);
            auto s = co_await std::move(connecting);
            if (!s) {
                out.error = s.error().message;
                co_return;
            }
            std::shared_ptr<ssh::session> session = *s;
            {
                auto opening = ssh::channel::open_session(session, deadline);
                auto ch = co_await std::move(opening);
                if (!ch) {
                    out.error = ch.error().message;
                    co_return;
                }
                ssh::agent_grant grant;
                if (request) {
                    auto requesting = ssh::request_agent_forwarding(*ch, agent_socket, deadline);
                    auto r = co_await std::move(requesting);
                    if (r)
                        grant = std::move(*r);
                    else
                        out.error = r.error().message;
                }
                if (before_exec) before_exec();
                auto exec = ch->request_exec("probe", deadline);
                if (auto r = co_await std::move(exec); !r) {
                    out.error = r.error().message;
                    co_return;
                }
                while (!ch->finished()) {
                    ch->drain();
                    if (ch->finished()) break;
                    if (auto w = co_await session->wait(deadline); !w) break;
                }
                out.exit_status = ch->state().exit_status;
            }
            out.served = session->agent().served();
            out.refused = session->agent().refused();
            session->disconnect();
        },
        [](std::exception_ptr e) {
            if (e) std::rethrow_exception(e);
        });
    io.run();
    return out;
}

class AgentForwardLibrary : public ::testing::Test {
  protected:
    void SetUp() override {
        auto a = ssh_agent_fixture::start();
        ASSERT_TRUE(a) << a.error().message;
        agent.emplace(std::move(*a));
        auto d = temp_dir::create("tunnel-agent-lib");
        ASSERT_TRUE(d);
        auto gen = run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "probe-key", "-f",
                        d->file("key")});
        ASSERT_TRUE(gen.ok()) << gen.describe();
        ASSERT_TRUE(agent->add_key(d->file("key")));
        int fds[2];
        ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        client_fd = fds[0];
        ::fcntl(client_fd, F_SETFL, ::fcntl(client_fd, F_GETFL) | O_NONBLOCK);
        server = std::thread([fd = fds[1], this] { serve(fd, probe); });
    }
    void TearDown() override {
        // A client that never ran: its end closed, the server sees EOF and ends.
        if (client_fd >= 0) ::close(client_fd);
        if (server.joinable()) server.join();
    }

    client_outcome probe_client(std::optional<std::string> socket, bool request,
                                const std::function<void()>& before_exec = {}) {
        const int fd = std::exchange(client_fd, -1);  // the session owns it now
        auto out = run_client(fd, std::move(socket), request, before_exec);
        server.join();
        return out;
    }

    int client_fd = -1;
    probe_result probe;
    std::thread server;
    std::optional<ssh_agent_fixture> agent;
};

TEST_F(AgentForwardLibrary, AnAgentChannelNobodyAskedForIsRefused) {
    // Forwarding is configured, but this session never asked for it.
    auto out = probe_client(agent->socket_path(), /*request=*/false);
    ASSERT_EQ(probe.failure, "");
    EXPECT_EQ(out.error, "");
    EXPECT_EQ(probe.open_rc, SSH_ERROR)
        << "the client accepted an agent channel it never asked for";
    EXPECT_EQ(out.refused, 1u);
    EXPECT_EQ(out.served, 0u);
    EXPECT_EQ(out.exit_status, 0);
}

TEST_F(AgentForwardLibrary, AnAskedForAgentChannelReachesTheLocalAgent) {
    auto out = probe_client(agent->socket_path(), /*request=*/true);
    ASSERT_EQ(probe.failure, "");
    EXPECT_EQ(out.error, "");
    ASSERT_EQ(probe.open_rc, SSH_OK);
    EXPECT_EQ(probe.reply_type, 12) << "SSH_AGENT_IDENTITIES_ANSWER from the real agent";
    EXPECT_EQ(out.served, 1u);
    EXPECT_EQ(out.refused, 0u);
    EXPECT_EQ(out.exit_status, 0);
}

TEST_F(AgentForwardLibrary, AnAgentThatWentAwayRefusesTheChannelAndTheCommandGoesOn) {
    auto out = probe_client(agent->socket_path(), /*request=*/true, [this] { agent->stop(); });
    ASSERT_EQ(probe.failure, "");
    EXPECT_EQ(out.error, "");
    EXPECT_EQ(probe.open_rc, SSH_ERROR);
    EXPECT_EQ(out.refused, 1u);
    EXPECT_EQ(out.exit_status, 0);
}

}  // namespace
}  // namespace tunnel::test
