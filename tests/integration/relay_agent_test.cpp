// Agent-forwarding requests from tunnel clients, against a real `tunnel
// relay`: the client is a real libssh 0.10 session through `tunnel
// ws-connect` that publishes a name, takes the forwarded-tcpip channel a
// public request opens (the only channels a relay session has), and sends
// `auth-agent-req@openssh.com` on it; it also opens an
// `auth-agent@openssh.com` channel itself. The relay refuses unless the
// tenant is in agent_forwarding.tenants, and audits and counts each request.
#include <sys/socket.h>
#include <unistd.h>

#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <libssh/libssh.h>
#include <nlohmann/json.hpp>

#include "support/relay_fixture.hpp"
#include "support/streaming_origin.hpp"
#include "support/tcp_servers.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;

struct session_deleter {
    void operator()(ssh_session s) const noexcept {
        ssh_disconnect(s);
        ssh_free(s);
    }
};
using session_ptr = std::unique_ptr<ssh_session_struct, session_deleter>;

std::string metrics_line(const relay_fixture& relay, const std::string& series) {
    std::istringstream in(relay.admin_get("/metrics"));
    for (std::string line; std::getline(in, line);)
        if (line.rfind(series + " ", 0) == 0) return line.substr(series.size() + 1);
    return "";
}

// The audit records of `event` for `tenant`.
std::vector<nlohmann::json> audited(const relay_fixture& relay, const std::string& event,
                                    const std::string& tenant) {
    std::vector<nlohmann::json> out;
    std::istringstream in(read_text_file(relay.audit_path()).value_or(""));
    for (std::string line; std::getline(in, line);) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (!j.is_discarded() && j.value("event", "") == event && j.value("tenant", "") == tenant)
            out.push_back(std::move(j));
    }
    return out;
}

// A tenant's client with a public request in flight on `channel`.
class agent_client {
  public:
    void start(const relay_fixture& relay, const std::string& tenant) {
        auto tok = relay.mint(tenant, "app");
        ASSERT_TRUE(tok) << tok.error().message;
        session_.reset(ssh_new());
        ASSERT_TRUE(session_);
        const std::string proxy = fmt::format("{} ws-connect {} --token-file {}", tunnel_binary(),
                                              relay.attach_url(), relay.token_file(*tok));
        bool no = false;
        int timeout_s = 10;
        ssh_options_set(session_.get(), SSH_OPTIONS_PROCESS_CONFIG, &no);
        ssh_options_set(session_.get(), SSH_OPTIONS_HOST, "127.0.0.1");
        ssh_options_set(session_.get(), SSH_OPTIONS_USER, tenant.c_str());
        ssh_options_set(session_.get(), SSH_OPTIONS_KNOWNHOSTS, "/dev/null");
        ssh_options_set(session_.get(), SSH_OPTIONS_PROXYCOMMAND, proxy.c_str());
        ssh_options_set(session_.get(), SSH_OPTIONS_TIMEOUT, &timeout_s);
        ASSERT_EQ(ssh_connect(session_.get()), SSH_OK) << ssh_get_error(session_.get());
        ASSERT_EQ(ssh_userauth_none(session_.get(), nullptr), SSH_AUTH_SUCCESS)
            << ssh_get_error(session_.get());
        int bound = 0;
        ASSERT_EQ(ssh_channel_listen_forward(session_.get(), "app", 80, &bound), SSH_OK)
            << ssh_get_error(session_.get());
        ASSERT_TRUE(relay.wait_published(tenant, "app", 10s));

        caller_ = connect_tcp("127.0.0.1", relay.public_port());
        ASSERT_GE(caller_, 0);
        const std::string req =
            fmt::format("GET /t/{}/app/ HTTP/1.1\r\nHost: relay.test\r\n\r\n", tenant);
        ASSERT_EQ(::send(caller_, req.data(), req.size(), MSG_NOSIGNAL), (ssize_t)req.size());
        int port = 0;
        channel_ = ssh_channel_open_forward_port(session_.get(), 10000, &port, nullptr, nullptr);
        ASSERT_NE(channel_, nullptr) << ssh_get_error(session_.get());
        char head[4096];
        ASSERT_GT(ssh_channel_read_timeout(channel_, head, sizeof head, 0, 5000), 0);
    }

    // auth-agent-req@openssh.com on the forwarded channel (no reply comes).
    [[nodiscard]] int request_agent() {
        int rc = ssh_channel_request_auth_agent(channel_);
        // No reply is asked for, so nothing makes libssh send it yet.
        if (rc == SSH_OK) rc = ssh_blocking_flush(session_.get(), 5000);
        return rc;
    }

    // An auth-agent@openssh.com channel opened by the client; the answer.
    [[nodiscard]] int open_agent_channel() {
        ssh_channel c = ssh_channel_new(session_.get());
        int rc = ssh_channel_open_auth_agent(c);
        ssh_channel_free(c);
        return rc;
    }

    // Answers the public request: the tunnel kept working.
    [[nodiscard]] std::string answer() {
        const std::string reply =
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
        if (ssh_channel_write(channel_, reply.data(), reply.size()) != (int)reply.size())
            return "write failed";
        ssh_channel_send_eof(channel_);
        timeval five{5, 0};
        ::setsockopt(caller_, SOL_SOCKET, SO_RCVTIMEO, &five, sizeof five);
        std::string got;
        char buf[4096];
        for (;;) {
            ssize_t n = ::recv(caller_, buf, sizeof buf, 0);
            if (n <= 0) break;
            got.append(buf, static_cast<std::size_t>(n));
        }
        return got;
    }

    ~agent_client() {
        if (caller_ >= 0) ::close(caller_);
        if (channel_) ssh_channel_free(channel_);
    }

  private:
    session_ptr session_;
    ssh_channel channel_ = nullptr;
    int caller_ = -1;
};

class RelayAgent : public ::testing::Test {
  protected:
    void SetUp() override {
        relay_options o;
        o.audit_log = true;
        o.extra_yaml = "agent_forwarding:\n  tenants: [trusted]\n";
        auto r = relay_fixture::start(o);
        ASSERT_TRUE(r) << r.error().message;
        relay.emplace(std::move(*r));
    }

    bool wait_audited(const std::string& event, const std::string& tenant, std::size_t n) {
        return streaming_origin::wait_until(
            [&] { return audited(*relay, event, tenant).size() >= n; }, 5s);
    }

    std::optional<relay_fixture> relay;
};

TEST_F(RelayAgent, ATenantWithoutThePolicyIsRefusedAndAudited) {
    agent_client c;
    ASSERT_NO_FATAL_FAILURE(c.start(*relay, "plain"));
    EXPECT_EQ(c.request_agent(), SSH_OK);  // sent; SSH gives it no answer
    EXPECT_EQ(c.open_agent_channel(), SSH_ERROR);
    ASSERT_TRUE(wait_audited("agent_forwarding_refused", "plain", 2)) << relay->log();
    const auto records = audited(*relay, "agent_forwarding_refused", "plain");
    ASSERT_EQ(records.size(), 2u);
    // Either order: the channel open is answered inside libssh's packet
    // loop, the request after it.
    std::set<std::string> requests;
    for (const auto& rec : records) {
        requests.insert(rec["request"].get<std::string>());
        EXPECT_EQ(rec["peer"].get<std::string>().empty(), false);
        if (rec["request"] == "auth-agent-req@openssh.com") {
            EXPECT_NE(rec["reason"].get<std::string>().find("agent_forwarding.tenants"),
                      std::string::npos);
        }
    }
    EXPECT_EQ(requests, (std::set<std::string>{"auth-agent-req@openssh.com",
                                               "auth-agent@openssh.com channel"}));
    EXPECT_TRUE(audited(*relay, "agent_forwarding_allowed", "plain").empty());
    EXPECT_EQ(
        metrics_line(*relay, "relay_agent_requests_total{tenant=\"plain\",outcome=\"refused\"}"),
        "2");
    EXPECT_NE(c.answer().find("200 OK"), std::string::npos) << "the tunnel stopped working";
}

TEST_F(RelayAgent, ATenantWithThePolicyIsAllowedAndAudited) {
    agent_client c;
    ASSERT_NO_FATAL_FAILURE(c.start(*relay, "trusted"));
    EXPECT_EQ(c.request_agent(), SSH_OK);
    ASSERT_TRUE(wait_audited("agent_forwarding_allowed", "trusted", 1)) << relay->log();
    const auto allowed = audited(*relay, "agent_forwarding_allowed", "trusted");
    ASSERT_EQ(allowed.size(), 1u);
    EXPECT_EQ(allowed[0]["request"], "auth-agent-req@openssh.com");
    EXPECT_FALSE(allowed[0]["peer"].get<std::string>().empty());
    // Agent channels the client opens stay refused: the relay has no agent.
    EXPECT_EQ(c.open_agent_channel(), SSH_ERROR);
    ASSERT_TRUE(wait_audited("agent_forwarding_refused", "trusted", 1)) << relay->log();
    EXPECT_EQ(
        metrics_line(*relay, "relay_agent_requests_total{tenant=\"trusted\",outcome=\"allowed\"}"),
        "1");
    EXPECT_NE(c.answer().find("200 OK"), std::string::npos);
}

TEST_F(RelayAgent, AuditRecordsAreCappedPerTunnelAndTheRestCounted) {
    agent_client c;
    ASSERT_NO_FATAL_FAILURE(c.start(*relay, "noisy"));
    for (int i = 0; i < 20; ++i) ASSERT_EQ(c.request_agent(), SSH_OK);
    ASSERT_TRUE(streaming_origin::wait_until(
        [&] {
            return metrics_line(
                       *relay,
                       "relay_agent_requests_total{tenant=\"noisy\",outcome=\"refused\"}") == "20";
        },
        5s))
        << relay->admin_get("/metrics");
    EXPECT_EQ(audited(*relay, "agent_forwarding_refused", "noisy").size(), 8u);
    EXPECT_NE(c.answer().find("200 OK"), std::string::npos);
}

}  // namespace
}  // namespace tunnel::test
