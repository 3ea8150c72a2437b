// A tunnel client that ignores the SSH window (issue 10, finding 12), against
// a real `tunnel relay`: the client is a real libssh 0.10 session (through
// `tunnel ws-connect` as its ProxyCommand) that publishes a name, takes the
// forwarded-tcpip channel the relay opens for a public request, and answers
// with a response body written as fast as it can while the public caller
// reads nothing.
//
// libssh clamps ssh_channel_write to the peer's window, so the misbehaving
// client moves that window itself: it sets the `remote_window` field of its
// own ssh_channel (libssh 0.10's struct ssh_channel_struct, whose head the
// test declares and checks against ssh_channel_window_size() before writing)
// to 1 GiB before every write. The bytes then go out as ordinary
// SSH_MSG_CHANNEL_DATA packets, beyond what the relay granted. libssh on the
// relay's side accepts such data into a buffer without bound, so the relay
// must count what it holds and close the tunnel. A second test runs the same
// scenario with the window left alone and checks the relay does not close
// a client that plays by the rules.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <libssh/libssh.h>

#include "support/relay_fixture.hpp"
#include "support/streaming_origin.hpp"
#include "support/tcp_servers.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// The first fields of libssh 0.10's struct ssh_channel_struct
// (include/libssh/channels.h); checked at run time before it is used.
struct libssh_channel_head {
    void* session;
    std::uint32_t local_channel;
    std::uint32_t local_window;
    int local_eof;
    std::uint32_t local_maxpacket;
    std::uint32_t remote_channel;
    std::uint32_t remote_window;
};

long rss_kib(int pid) {
    std::ifstream in(fmt::format("/proc/{}/status", pid));
    for (std::string line; std::getline(in, line);)
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return -1;
}

std::string metrics_line(const relay_fixture& relay, const std::string& series) {
    std::istringstream in(relay.admin_get("/metrics"));
    for (std::string line; std::getline(in, line);)
        if (line.rfind(series + " ", 0) == 0) return line.substr(series.size() + 1);
    return "";
}

struct session_deleter {
    void operator()(ssh_session s) const noexcept {
        ssh_disconnect(s);
        ssh_free(s);
    }
};
using session_ptr = std::unique_ptr<ssh_session_struct, session_deleter>;

class RelayWindow : public ::testing::Test {
  protected:
    void SetUp() override {
        relay_options o;
        o.audit_log = true;
        auto r = relay_fixture::start(o);
        ASSERT_TRUE(r) << r.error().message;
        relay.emplace(std::move(*r));
        auto tok = relay->mint("flood", "flood");
        ASSERT_TRUE(tok);

        // The client: libssh over `tunnel ws-connect`, auth none as the tenant.
        session.reset(ssh_new());
        ASSERT_TRUE(session);
        const std::string proxy = fmt::format("{} ws-connect {} --token-file {}", tunnel_binary(),
                                              relay->attach_url(), relay->token_file(*tok));
        bool no = false;
        int timeout_s = 10;
        ssh_options_set(session.get(), SSH_OPTIONS_PROCESS_CONFIG, &no);
        ssh_options_set(session.get(), SSH_OPTIONS_HOST, "127.0.0.1");
        ssh_options_set(session.get(), SSH_OPTIONS_USER, "flood");
        ssh_options_set(session.get(), SSH_OPTIONS_KNOWNHOSTS, "/dev/null");
        ssh_options_set(session.get(), SSH_OPTIONS_PROXYCOMMAND, proxy.c_str());
        ssh_options_set(session.get(), SSH_OPTIONS_TIMEOUT, &timeout_s);
        ASSERT_EQ(ssh_connect(session.get()), SSH_OK) << ssh_get_error(session.get());
        ASSERT_EQ(ssh_userauth_none(session.get(), nullptr), SSH_AUTH_SUCCESS)
            << ssh_get_error(session.get());
        int bound = 0;
        ASSERT_EQ(ssh_channel_listen_forward(session.get(), "flood", 80, &bound), SSH_OK)
            << ssh_get_error(session.get());
        ASSERT_TRUE(relay->wait_published("flood", "flood", 10s));

        // A public caller that asks and then reads nothing.
        int small = 4096;
        caller = connect_tcp("127.0.0.1", relay->public_port());
        ASSERT_GE(caller, 0);
        ::setsockopt(caller, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        const std::string req = "GET /t/flood/flood/ HTTP/1.1\r\nHost: relay.test\r\n\r\n";
        ASSERT_EQ(::send(caller, req.data(), req.size(), MSG_NOSIGNAL), (ssize_t)req.size());

        int port = 0;
        channel = ssh_channel_open_forward_port(session.get(), 10000, &port, nullptr, nullptr);
        ASSERT_NE(channel, nullptr) << ssh_get_error(session.get());
        char head[4096];
        ASSERT_GT(ssh_channel_read_timeout(channel, head, sizeof head, 0, 5000), 0);
        const std::string response_head =
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            "Content-Length: 10000000000\r\n\r\n";
        ASSERT_EQ(ssh_channel_write(channel, response_head.data(), response_head.size()),
                  static_cast<int>(response_head.size()));
        rss_before = rss_kib(relay->pid());
    }

    void TearDown() override {
        if (caller >= 0) ::close(caller);
        if (channel) ssh_channel_free(channel);
    }

    std::optional<relay_fixture> relay;
    session_ptr session;
    ssh_channel channel = nullptr;
    int caller = -1;
    long rss_before = 0;
};

TEST_F(RelayWindow, AClientThatWritesPastTheWindowHasItsTunnelClosed) {
    auto* head = reinterpret_cast<libssh_channel_head*>(channel);
    // The declared layout is libssh's: the field is the window libssh reports.
    ASSERT_EQ(head->remote_window, ssh_channel_window_size(channel));
    ASSERT_GT(ssh_channel_window_size(channel), 0u);

    const std::string block(256 * 1024, 'w');
    std::uint64_t written = 0;
    const auto t0 = steady::now();
    bool failed = false;
    // At most 512 MiB or 15 s; a relay that bounds what it holds ends it much sooner.
    while (steady::now() - t0 < 15s && written < (std::uint64_t{512} << 20)) {
        head->remote_window = 1u << 30;  // ignore the window the relay granted
        int n = ssh_channel_write(channel, block.data(), static_cast<std::uint32_t>(block.size()));
        if (n <= 0 || !ssh_is_connected(session.get())) {
            failed = true;
            break;
        }
        written += static_cast<std::uint64_t>(n);
    }
    const long rss_after = rss_kib(relay->pid());
    EXPECT_TRUE(failed) << "the relay kept taking data: " << (written >> 20) << " MiB written, "
                        << "relay RSS " << rss_before / 1024 << " -> " << rss_after / 1024
                        << " MiB";
    // What the relay holds for the tunnel stays near its limit
    // (limits.max_channel_buffer_bytes, 4 MiB by default).
    EXPECT_LT(rss_after - rss_before, 64 * 1024)
        << "relay RSS grew by " << (rss_after - rss_before) / 1024 << " MiB";
    EXPECT_TRUE(relay->wait_published("flood", "flood", 5s, false));
    EXPECT_TRUE(streaming_origin::wait_until(
        [&] {
            return read_text_file(relay->audit_path()).value_or("").find("tunnel_overflow") !=
                   std::string::npos;
        },
        5s));
    EXPECT_EQ(metrics_line(*relay, "relay_tunnel_overflows_total{tenant=\"flood\"}"), "1");
    EXPECT_NE(relay->log().find("ignores the SSH window"), std::string::npos);
    std::printf(
        "[ measured ] %llu MiB written past the window before the relay closed the "
        "tunnel; relay RSS %ld -> %ld MiB\n",
        static_cast<unsigned long long>(written >> 20), rss_before / 1024, rss_after / 1024);
}

TEST_F(RelayWindow, AClientThatKeepsToTheWindowIsNotClosed) {
    const std::string block(64 * 1024, 'w');
    std::uint64_t written = 0;
    const auto t0 = steady::now();
    // As fast as the window allows, for 4 s (less than min_body_rate_grace,
    // so the caller that reads nothing is not cut off meanwhile).
    while (steady::now() - t0 < 4s) {
        const std::uint32_t window = ssh_channel_window_size(channel);
        if (window == 0) {
            (void)ssh_channel_poll_timeout(channel, 50, 0);  // takes window adjusts in
            continue;
        }
        int n =
            ssh_channel_write(channel, block.data(), std::min<std::uint32_t>(window, block.size()));
        ASSERT_GT(n, 0) << ssh_get_error(session.get());
        written += static_cast<std::uint64_t>(n);
    }
    EXPECT_TRUE(ssh_is_connected(session.get()));
    EXPECT_TRUE(relay->wait_published("flood", "flood", 1s));
    EXPECT_EQ(metrics_line(*relay, "relay_tunnel_overflows_total{tenant=\"flood\"}"), "");
    // It did fill what the relay allows a compliant client: its buffer and
    // libssh's re-opened window.
    EXPECT_GT(written, std::uint64_t{2} << 20);
    std::printf(
        "[ measured ] a window-respecting client wrote %llu KiB to a caller that reads "
        "nothing, then waited\n",
        static_cast<unsigned long long>(written >> 10));
}

}  // namespace
}  // namespace tunnel::test
