// Agent forwarding (-A, -a, ForwardAgent) through the CLI, against the real
// sshd fixture and a real ssh-agent. The agent holds a key that exists
// nowhere on disk (generated, added, deleted) and that sshd accepts: the
// second hop, an OpenSSH `ssh` run on the host back into the same sshd, can
// only log in through the forwarded agent.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/net.hpp"
#include "support/process.hpp"
#include "support/ssh_agent_fixture.hpp"
#include "support/sshd_fixture.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

class AgentForwardCli : public ::testing::Test {
  protected:
    void SetUp() override {
        auto s = sshd_fixture::start();
        ASSERT_TRUE(s) << s.error().message;
        sshd.emplace(std::move(*s));
        auto d = temp_dir::create("tunnel-agent-test");
        ASSERT_TRUE(d) << d.error().message;
        scratch.emplace(std::move(*d));
        auto a = ssh_agent_fixture::start();
        ASSERT_TRUE(a) << a.error().message;
        agent.emplace(std::move(*a));

        // The agent's key: authorized by sshd, held only by the agent.
        const auto key = scratch->file("hop_key");
        auto gen =
            run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "second-hop-key", "-f", key});
        ASSERT_TRUE(gen.ok()) << gen.describe();
        ASSERT_TRUE(agent->add_key(key));
        auto pub = read_text_file(key + ".pub");
        ASSERT_TRUE(pub);
        auto authorized = read_text_file(sshd->authorized_keys_path());
        ASSERT_TRUE(authorized);
        ASSERT_TRUE(write_text_file(sshd->authorized_keys_path(), *authorized + *pub, 0600));
        std::filesystem::remove(key);
        std::filesystem::remove(key + ".pub");
    }

    // OpenSSH on the host, logging in to the same sshd with whatever agent
    // it is given (no key file of its own is accepted there).
    [[nodiscard]] std::string second_hop(const std::string& then = "echo second-hop") const {
        return fmt::format(
            "ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no "
            "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -p {} root@127.0.0.1 '{}'",
            sshd->port(), then);
    }

    [[nodiscard]] cli_options with_agent() const {
        cli_options o;
        o.env = agent->env();
        return o;
    }

    [[nodiscard]] std::string diag(const run_result& r) const {
        return r.describe() + "\nstdout: " + r.out + "\nsshd log:\n" + sshd->log();
    }

    std::optional<sshd_fixture> sshd;
    std::optional<temp_dir> scratch;
    std::optional<ssh_agent_fixture> agent;
};

TEST_F(AgentForwardCli, ExecSecondHopLogsInThroughTheForwardedAgent) {
    auto r = run_tunnel(exec_args(*sshd, {"-A"}, {second_hop()}), with_agent());
    ASSERT_EQ(r.exit_code, 0) << diag(r);
    EXPECT_EQ(r.out, "second-hop\n");
}

TEST_F(AgentForwardCli, ExecWithoutAgentForwardingTheSecondHopIsRefused) {
    auto r = run_tunnel(exec_args(*sshd, {}, {second_hop()}), with_agent());
    EXPECT_EQ(r.exit_code, 255) << diag(r);
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find("Permission denied"), std::string::npos) << r.err;
    auto env = run_tunnel(exec_args(*sshd, {}, {"echo ${SSH_AUTH_SOCK:-none}"}), with_agent());
    EXPECT_EQ(env.out, "none\n") << diag(env);
}

TEST_F(AgentForwardCli, ExecForwardsWhatForwardAgentNames) {
    // ForwardAgent yes: the agent of SSH_AUTH_SOCK.
    auto yes =
        run_tunnel(exec_args(*sshd, {"-o", "ForwardAgent=yes"}, {second_hop()}), with_agent());
    EXPECT_EQ(yes.exit_code, 0) << diag(yes);
    // A socket path, and $VAR, with no SSH_AUTH_SOCK at all.
    cli_options no_sock;
    no_sock.env.set = {{"OTHER_AGENT", agent->socket_path()}};
    auto path = run_tunnel(
        exec_args(*sshd, {"-o", "ForwardAgent=" + agent->socket_path()}, {second_hop()}), no_sock);
    EXPECT_EQ(path.exit_code, 0) << diag(path);
    auto var =
        run_tunnel(exec_args(*sshd, {"-o", "ForwardAgent=$OTHER_AGENT"}, {second_hop()}), no_sock);
    EXPECT_EQ(var.exit_code, 0) << diag(var);
    // ForwardAgent no, and -a over ForwardAgent yes: nothing forwarded.
    auto no = run_tunnel(exec_args(*sshd, {"-o", "ForwardAgent=no"}, {second_hop()}), with_agent());
    EXPECT_EQ(no.exit_code, 255) << diag(no);
    auto off = run_tunnel(exec_args(*sshd, {"-o", "ForwardAgent=yes", "-a"}, {second_hop()}),
                          with_agent());
    EXPECT_EQ(off.exit_code, 255) << diag(off);
}

TEST_F(AgentForwardCli, TheLastOfAAndLowercaseAWins) {
    auto off =
        run_tunnel(exec_args(*sshd, {"-A", "-a"}, {"echo ${SSH_AUTH_SOCK:-none}"}), with_agent());
    EXPECT_EQ(off.out, "none\n") << diag(off);
    auto on =
        run_tunnel(exec_args(*sshd, {"-a", "-A"}, {"echo ${SSH_AUTH_SOCK:-none}"}), with_agent());
    EXPECT_EQ(on.exit_code, 0) << diag(on);
    EXPECT_NE(on.out, "none\n") << diag(on);
}

TEST_F(AgentForwardCli, ProgramsOnTheHostSeeTheLocalAgentsKeys) {
    // Several agent connections in one session, each its own channel.
    auto r = run_tunnel(
        exec_args(*sshd, {"-A"}, {"for i in 1 2 3; do ssh-add -l || exit 1; done | sort -u"}),
        with_agent());
    ASSERT_EQ(r.exit_code, 0) << diag(r);
    EXPECT_NE(r.out.find("second-hop-key (ED25519)"), std::string::npos) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
}

// A program left behind on the host that still holds an agent connection
// when the command ends.
std::string agent_holder() {
    return "setsid python3 -c 'import os, socket, time\n"
           "s = socket.socket(socket.AF_UNIX)\n"
           "s.connect(os.environ[\"SSH_AUTH_SOCK\"])\n"
           "time.sleep(10)' </dev/null >/dev/null 2>&1 & sleep 1; echo left";
}

TEST_F(AgentForwardCli, ForwardingEndsWithTheCommand) {
    // tunnel closes the held agent channel and exits at once (it would
    // otherwise wait for the program, and be stopped as stuck after 5 s).
    const auto t0 = std::chrono::steady_clock::now();
    auto r = run_tunnel(exec_args(*sshd, {"-A"}, {agent_holder()}), with_agent());
    const auto took = std::chrono::steady_clock::now() - t0;
    ASSERT_EQ(r.exit_code, 0) << diag(r);
    EXPECT_EQ(r.out, "left\n");
    EXPECT_EQ(r.err.find("internal"), std::string::npos) << r.err;
    EXPECT_LT(took, std::chrono::seconds(4)) << r.err;
}

TEST_F(AgentForwardCli, SshCommandEndsWhileAHostProgramHoldsTheAgent) {
    // tunnel ssh disconnects right after the command: the agent channel's
    // pump is still winding down then (ASan would catch a use after free).
    const auto t0 = std::chrono::steady_clock::now();
    auto r = run_tunnel(concat(concat({"ssh", "-A"}, fixture_flags(*sshd)),
                               {"root@127.0.0.1", "--", agent_holder()}),
                        with_agent());
    const auto took = std::chrono::steady_clock::now() - t0;
    ASSERT_EQ(r.exit_code, 0) << diag(r);
    EXPECT_EQ(r.out, "left\n");
    EXPECT_EQ(r.err.find("internal"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("Sanitizer"), std::string::npos) << r.err;
    EXPECT_LT(took, std::chrono::seconds(4)) << r.err;
}

TEST_F(AgentForwardCli, AMissingAgentIsReportedAndTheCommandStillRuns) {
    // SSH_AUTH_SOCK unset (the CLI helper's default).
    auto r = run_tunnel(exec_args(*sshd, {"-A"}, {"echo ${SSH_AUTH_SOCK:-none}"}));
    ASSERT_EQ(r.exit_code, 0) << diag(r);
    EXPECT_EQ(r.out, "none\n");
    EXPECT_NE(r.err.find("$SSH_AUTH_SOCK is not set"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("continuing without agent forwarding"), std::string::npos) << r.err;
    auto gone = run_tunnel(exec_args(*sshd, {"-o", "ForwardAgent=" + scratch->file("no.sock")},
                                     {"echo ${SSH_AUTH_SOCK:-none}"}));
    ASSERT_EQ(gone.exit_code, 0) << diag(gone);
    EXPECT_EQ(gone.out, "none\n");
    EXPECT_NE(gone.err.find("no.sock is not there"), std::string::npos) << gone.err;
}

TEST_F(AgentForwardCli, SshCommandSecondHop) {
    auto args =
        concat(concat({"ssh", "-A"}, fixture_flags(*sshd)), {"root@127.0.0.1", "--", second_hop()});
    auto r = run_tunnel(args, with_agent());
    ASSERT_EQ(r.exit_code, 0) << diag(r);
    EXPECT_EQ(r.out, "second-hop\n");
    auto without = run_tunnel(concat(concat({"ssh"}, fixture_flags(*sshd)),
                                     {"root@127.0.0.1", "--", "echo ${SSH_AUTH_SOCK:-none}"}),
                              with_agent());
    EXPECT_EQ(without.out, "none\n") << diag(without);
}

TEST_F(AgentForwardCli, RunSecondHopOnAnInventoryHost) {
    const std::string host = fmt::format("root@127.0.0.1:{}", sshd->port());
    auto base = std::vector<std::string>{"run",
                                         "-i",
                                         host + ",",
                                         "-F",
                                         "/dev/null",
                                         "--private-key",
                                         sshd->client_key_path(),
                                         "-o",
                                         "UserKnownHostsFile=" + sshd->known_hosts_path(),
                                         "-o",
                                         "GlobalKnownHostsFile=/dev/null",
                                         "--json"};
    auto r = run_tunnel(concat(base, {"-A", "--", second_hop()}), with_agent());
    ASSERT_EQ(r.exit_code, 0) << diag(r);
    auto doc = nlohmann::json::parse(r.out, nullptr, false);
    ASSERT_FALSE(doc.is_discarded()) << r.out;
    EXPECT_EQ(doc["hosts"][0]["stdout"], "second-hop\n") << r.out;
    auto without = run_tunnel(concat(base, {"--", second_hop()}), with_agent());
    EXPECT_EQ(without.exit_code, 1) << diag(without);
}

TEST_F(AgentForwardCli, ForwardAcceptsTheFlagsAndSaysAHasNoEffect) {
    // tunnel forward opens no session channel (as ssh -N): -A is accepted and
    // explained. A closed port makes it end at once (--no-reconnect).
    auto port = unused_port();
    ASSERT_TRUE(port) << port.error().message;
    auto local = unused_port();
    ASSERT_TRUE(local) << local.error().message;
    const auto closed = std::to_string(*port);
    const auto listen = std::to_string(*local) + ":127.0.0.1:9";
    auto flags = std::vector<std::string>{"forward", "-F", "/dev/null",     "-p",
                                          closed,    "-o", "BatchMode=yes", "--no-reconnect"};
    auto with_a = run_tunnel(concat(flags, {"-A", "root@127.0.0.1", "-L", listen}), with_agent());
    EXPECT_EQ(with_a.exit_code, 255) << with_a.describe();
    EXPECT_NE(with_a.err.find("-A has no effect here"), std::string::npos) << with_a.err;
    auto with_lower =
        run_tunnel(concat(flags, {"-a", "root@127.0.0.1", "-L", listen}), with_agent());
    EXPECT_EQ(with_lower.exit_code, 255) << with_lower.describe();
    EXPECT_EQ(with_lower.err.find("no effect"), std::string::npos) << with_lower.err;
    EXPECT_EQ(with_lower.err.find("tunnel forward:"), std::string::npos) << with_lower.err;
}

}  // namespace
}  // namespace tunnel::test
