// The test fixtures themselves, checked with the real OpenSSH client.
#include <sys/stat.h>

#include <csignal>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "support/net.hpp"
#include "support/process.hpp"
#include "support/ssh_agent_fixture.hpp"
#include "support/sshd_fixture.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;

// `ssh` that reads no user config and trusts only the fixture's known_hosts.
std::vector<std::string> ssh_command(const sshd_fixture& sshd, std::vector<std::string> options,
                                     std::vector<std::string> remote) {
    std::vector<std::string> argv = {"ssh",
                                     "-F",
                                     "/dev/null",
                                     "-p",
                                     std::to_string(sshd.port()),
                                     "-o",
                                     "UserKnownHostsFile=" + sshd.known_hosts_path(),
                                     "-o",
                                     "GlobalKnownHostsFile=/dev/null",
                                     "-o",
                                     "StrictHostKeyChecking=yes",
                                     "-o",
                                     "BatchMode=yes",
                                     "-o",
                                     "ConnectTimeout=10"};
    argv.insert(argv.end(), options.begin(), options.end());
    argv.push_back("root@" + sshd.host());
    argv.insert(argv.end(), remote.begin(), remote.end());
    return argv;
}

std::vector<std::string> ssh_with_key(const sshd_fixture& sshd, std::vector<std::string> remote) {
    return ssh_command(sshd, {"-i", sshd.client_key_path(), "-o", "IdentitiesOnly=yes"},
                       std::move(remote));
}

TEST(SshdFixture, RunsCommandWithClientKey) {
    auto sshd = sshd_fixture::start();
    ASSERT_TRUE(sshd) << sshd.error().message;
    const auto result = run(ssh_with_key(*sshd, {"echo", "hi"}));
    ASSERT_TRUE(result.ok()) << result.describe() << "\nsshd log:\n" << sshd->log();
    EXPECT_EQ(result.out, "hi\n");
}

TEST(SshdFixture, ExposesKeysAndKnownHosts) {
    auto sshd = sshd_fixture::start();
    ASSERT_TRUE(sshd) << sshd.error().message;
    EXPECT_EQ(sshd->host(), "127.0.0.1");
    EXPECT_NE(sshd->port(), 0);
    EXPECT_EQ(sshd->host_pubkey().rfind("ssh-ed25519 AAAA", 0), 0u) << sshd->host_pubkey();
    EXPECT_EQ(sshd->client_pubkey().rfind("ssh-ed25519 AAAA", 0), 0u) << sshd->client_pubkey();

    struct stat info {};
    ASSERT_EQ(::stat(sshd->client_key_path().c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 0777, 0600u);

    const auto known_hosts = read_text_file(sshd->known_hosts_path());
    ASSERT_TRUE(known_hosts);
    EXPECT_EQ(*known_hosts,
              "[127.0.0.1]:" + std::to_string(sshd->port()) + " " + sshd->host_pubkey() + "\n");
    EXPECT_TRUE(read_text_file(sshd->log_path()));
}

TEST(SshdFixture, SetsShlvlAndPassesNoClientEnvironment) {
    auto sshd = sshd_fixture::start();
    ASSERT_TRUE(sshd) << sshd.error().message;
    // SendEnv is refused without AcceptEnv: the variable must not arrive.
    auto argv =
        ssh_command(*sshd, {"-i", sshd->client_key_path(), "-o", "SendEnv=TUNNEL_FIXTURE_PROBE"},
                    {"echo", "$SHLVL", "${TUNNEL_FIXTURE_PROBE:-unset}"});
    const auto result =
        run(argv, run_options{.env = {.set = {{"TUNNEL_FIXTURE_PROBE", "sent"}}, .unset = {}},
                              .stdin_text = std::nullopt,
                              .cwd = {},
                              .timeout = 30s});
    ASSERT_TRUE(result.ok()) << result.describe();
    // sshd sets SHLVL=1; the login shell running the command counts itself.
    EXPECT_EQ(result.out, "2 unset\n");
}

TEST(SshdFixture, WritesUsableClientConfig) {
    auto sshd = sshd_fixture::start();
    ASSERT_TRUE(sshd) << sshd.error().message;
    const auto config = sshd->write_ssh_config("ConnectTimeout 10", "fixture");
    ASSERT_FALSE(config.empty());
    const auto result = run({"ssh", "-F", config, "fixture", "echo", "via-config"});
    ASSERT_TRUE(result.ok()) << result.describe() << "\nconfig:\n"
                             << read_text_file(config).value_or("");
    EXPECT_EQ(result.out, "via-config\n");
    EXPECT_NE(sshd->write_ssh_config(), config);  // a second call writes a new file
}

TEST(SshdFixture, RejectsUnknownKey) {
    auto sshd = sshd_fixture::start();
    ASSERT_TRUE(sshd) << sshd.error().message;
    auto dir = temp_dir::create();
    ASSERT_TRUE(dir);
    const auto other_key = dir->file("other");
    ASSERT_TRUE(run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other_key}).ok());
    const auto result =
        run(ssh_command(*sshd, {"-i", other_key, "-o", "IdentitiesOnly=yes"}, {"true"}));
    EXPECT_EQ(result.exit_code, 255) << result.describe();
}

TEST(SshdFixture, RestartKeepsPortAndKeys) {
    auto sshd = sshd_fixture::start();
    ASSERT_TRUE(sshd) << sshd.error().message;
    const auto port = sshd->port();
    const auto first_pid = sshd->pid();

    sshd->stop();
    EXPECT_FALSE(sshd->running());
    EXPECT_FALSE(port_accepts(port));
    EXPECT_EQ(run(ssh_with_key(*sshd, {"true"})).exit_code, 255);

    const auto restarted = sshd->restart();
    ASSERT_TRUE(restarted) << restarted.error().message;
    EXPECT_EQ(sshd->port(), port);
    EXPECT_NE(sshd->pid(), first_pid);
    const auto result = run(ssh_with_key(*sshd, {"echo", "again"}));
    ASSERT_TRUE(result.ok()) << result.describe() << "\nsshd log:\n" << sshd->log();
    EXPECT_EQ(result.out, "again\n");  // same host key: known_hosts still matches
}

TEST(SshdFixture, StopDropsOpenSessions) {
    auto sshd = sshd_fixture::start();
    ASSERT_TRUE(sshd) << sshd.error().message;
    auto log_dir = temp_dir::create();
    ASSERT_TRUE(log_dir);
    auto client = spawn(ssh_with_key(*sshd, {"echo", "started;", "exec", "sleep", "60"}),
                        spawn_options{.env = {},
                                      .stdout_path = log_dir->file("out"),
                                      .stderr_path = log_dir->file("err"),
                                      .cwd = {}});
    ASSERT_TRUE(client) << client.error().message;
    // The session is up once the remote echo arrived.
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (read_text_file(log_dir->file("out")).value_or("").find("started") == std::string::npos) {
        ASSERT_TRUE(client->running()) << read_text_file(log_dir->file("err")).value_or("");
        ASSERT_LT(std::chrono::steady_clock::now(), deadline);
        std::this_thread::sleep_for(5ms);
    }
    sshd->stop();
    const auto code = client->wait(10s);
    ASSERT_TRUE(code) << "ssh client still connected after stop()";
    EXPECT_EQ(*code, 255);
}

TEST(SshdFixture, ExtraConfigOverridesDefaults) {
    sshd_options options;
    options.extra_config = {"PermitRootLogin no"};
    auto sshd = sshd_fixture::start(options);
    ASSERT_TRUE(sshd) << sshd.error().message;
    const auto result = run(ssh_with_key(*sshd, {"true"}));
    EXPECT_EQ(result.exit_code, 255) << result.describe();
}

TEST(SshdFixture, MovedFixtureKeepsServing) {
    auto started = sshd_fixture::start();
    ASSERT_TRUE(started) << started.error().message;
    sshd_fixture sshd = std::move(*started);
    started = tl::unexpected(core::error{core::errc::cancelled, "moved"});  // destroys the husk
    const auto result = run(ssh_with_key(sshd, {"echo", "moved"}));
    ASSERT_TRUE(result.ok()) << result.describe();
    EXPECT_EQ(result.out, "moved\n");
}

TEST(SshdFixture, DestructorKillsServer) {
    pid_t pid = -1;
    std::uint16_t port = 0;
    {
        auto sshd = sshd_fixture::start();
        ASSERT_TRUE(sshd) << sshd.error().message;
        pid = sshd->pid();
        port = sshd->port();
        ASSERT_TRUE(port_accepts(port));
    }
    EXPECT_NE(::kill(pid, 0), 0);
    EXPECT_FALSE(port_accepts(port));
}

TEST(SshAgentFixture, AgentLogsIn) {
    auto sshd = sshd_fixture::start();
    ASSERT_TRUE(sshd) << sshd.error().message;
    auto agent = ssh_agent_fixture::start();
    ASSERT_TRUE(agent) << agent.error().message;
    const auto added = agent->add_key(sshd->client_key_path());
    ASSERT_TRUE(added) << added.error().message;
    const auto keys = agent->list_keys();
    ASSERT_TRUE(keys) << keys.error().message;
    EXPECT_NE(keys->find(sshd->client_pubkey().substr(0, 60)), std::string::npos) << *keys;

    // No -i: the only identity is the agent's.
    const auto result = run(
        ssh_command(*sshd, {"-o", "IdentitiesOnly=no"}, {"echo", "agent"}),
        run_options{.env = agent->env(), .stdin_text = std::nullopt, .cwd = {}, .timeout = 30s});
    ASSERT_TRUE(result.ok()) << result.describe() << "\nsshd log:\n" << sshd->log();
    EXPECT_EQ(result.out, "agent\n");
}

TEST(SshAgentFixture, EmptyAgentDoesNotLogIn) {
    auto sshd = sshd_fixture::start();
    ASSERT_TRUE(sshd) << sshd.error().message;
    auto agent = ssh_agent_fixture::start();
    ASSERT_TRUE(agent) << agent.error().message;
    const auto result = run(
        ssh_command(*sshd, {"-o", "IdentitiesOnly=no", "-o", "IdentityFile=/nonexistent"},
                    {"true"}),
        run_options{.env = agent->env(), .stdin_text = std::nullopt, .cwd = {}, .timeout = 30s});
    EXPECT_EQ(result.exit_code, 255) << result.describe();
}

TEST(SshAgentFixture, DestructorKillsAgent) {
    std::string socket;
    pid_t pid = -1;
    {
        auto agent = ssh_agent_fixture::start();
        ASSERT_TRUE(agent) << agent.error().message;
        socket = agent->socket_path();
        pid = agent->pid();
        struct stat info {};
        ASSERT_EQ(::stat(socket.c_str(), &info), 0);
    }
    EXPECT_NE(::kill(pid, 0), 0);
}

TEST(SshdFixtureProcess, RunCapturesOutputStdinAndExitCode) {
    const auto result = run(
        {"sh", "-c", "cat; echo err >&2; exit 3"},
        run_options{.env = {}, .stdin_text = std::string("from stdin"), .cwd = {}, .timeout = 10s});
    EXPECT_EQ(result.exit_code, 3);
    EXPECT_EQ(result.out, "from stdin");
    EXPECT_EQ(result.err, "err\n");
    EXPECT_FALSE(result.timed_out);
}

TEST(SshdFixtureProcess, RunKillsOnTimeout) {
    const auto started = std::chrono::steady_clock::now();
    const auto result =
        run({"sleep", "30"},
            run_options{.env = {}, .stdin_text = std::nullopt, .cwd = {}, .timeout = 200ms});
    EXPECT_TRUE(result.timed_out);
    EXPECT_EQ(result.term_signal, SIGKILL);
    EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
}

TEST(SshdFixtureProcess, RunReportsMissingProgram) {
    const auto result = run({"tunnel-no-such-program-here"});
    EXPECT_EQ(result.exit_code, -1);
    EXPECT_NE(result.err.find("not found"), std::string::npos) << result.err;
}

TEST(SshdFixtureProcess, RunAppliesEnvironmentChanges) {
    const auto result = run({"sh", "-c", "echo \"$A-${HOME:-nohome}\""},
                            run_options{.env = {.set = {{"A", "set"}}, .unset = {"HOME"}},
                                        .stdin_text = std::nullopt,
                                        .cwd = {},
                                        .timeout = 10s});
    EXPECT_EQ(result.out, "set-nohome\n");
}

TEST(SshdFixtureProcess, WaitForPortSeesListener) {
    auto port = unused_port();
    ASSERT_TRUE(port);
    EXPECT_FALSE(wait_for_port(*port, 20ms));
    auto sshd = sshd_fixture::start();
    ASSERT_TRUE(sshd) << sshd.error().message;
    EXPECT_TRUE(wait_for_port(sshd->port(), 1s));
}

}  // namespace
}  // namespace tunnel::test
