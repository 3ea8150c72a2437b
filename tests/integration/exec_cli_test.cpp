// `tunnel exec` driven like a user drives it: the real binary against real
// OpenSSH servers on 127.0.0.1, HOME pointed at a temp dir (ARCHITECTURE §7).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/net.hpp"
#include "support/process.hpp"
#include "support/ssh_agent_fixture.hpp"
#include "support/sshd_fixture.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

std::size_t count_of(const std::string& text, std::string_view needle) {
    std::size_t n = 0;
    for (auto p = text.find(needle); p != std::string::npos;
         p = text.find(needle, p + needle.size()))
        ++n;
    return n;
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

// Errors are one line on stderr, starting with "tunnel".
::testing::AssertionResult one_error_line(const run_result& r) {
    if (r.err.rfind("tunnel", 0) != 0)
        return ::testing::AssertionFailure() << "stderr does not start with \"tunnel\": " << r.err;
    if (count_of(r.err, "\n") != 1 || r.err.back() != '\n')
        return ::testing::AssertionFailure() << "stderr is not exactly one line: [" << r.err << "]";
    return ::testing::AssertionSuccess();
}

// A marker no other process on the machine carries: `sleep 300.NNNNNN`.
std::string unique_sleep_argument() {
    std::random_device rd;
    return "300." + std::to_string(100000 + rd() % 900000);
}

// Pids whose command line contains `needle` (pgrep -f), excluding ourselves.
std::string processes_matching(const std::string& needle) {
    auto r = run({"pgrep", "-a", "-f", needle});
    return r.out;
}

// Polls until no process matches `needle` or `timeout` passes; returns what is left.
std::string wait_until_gone(const std::string& needle, std::chrono::milliseconds timeout) {
    const auto deadline = steady::now() + timeout;
    for (;;) {
        auto left = processes_matching(needle);
        if (left.empty() || steady::now() >= deadline) return left;
        std::this_thread::sleep_for(20ms);
    }
}

// `ssh-keygen -lf` of a public key: "SHA256:...".
std::string sha256_fingerprint(const std::string& pubkey_line, const temp_dir& dir) {
    const auto path = dir.file("fp.pub");
    if (!write_text_file(path, pubkey_line + "\n")) return "?";
    auto r = run({"ssh-keygen", "-l", "-E", "sha256", "-f", path});
    auto start = r.out.find("SHA256:");
    if (start == std::string::npos) return "?";
    return r.out.substr(start, r.out.find(' ', start) - start);
}

// A fresh ed25519 key pair in dir: returns the private key path.
std::string fresh_key(const temp_dir& dir, const std::string& name) {
    const auto path = dir.file(name);
    auto r = run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path});
    EXPECT_TRUE(r.ok()) << r.describe();
    return path;
}

// Connection flags without a key or known_hosts choice: the test adds them.
std::vector<std::string> bare_flags(const sshd_fixture& sshd) {
    return {"-F", "/dev/null",
            "-p", std::to_string(sshd.port()),
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes"};
}

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

cli_options with_stdin(std::string text) {
    cli_options o;
    o.stdin_text = std::move(text);
    return o;
}

cli_options with_timeout(std::chrono::milliseconds timeout) {
    cli_options o;
    o.timeout = timeout;
    return o;
}

cli_options with_env(env_change env) {
    cli_options o;
    o.env = std::move(env);
    return o;
}

class ExecCli : public ::testing::Test {
  protected:
    void SetUp() override { start_sshd(); }

    void start_sshd(sshd_options options = {}) {
        auto s = sshd_fixture::start(std::move(options));
        ASSERT_TRUE(s) << s.error().message;
        sshd.emplace(std::move(*s));
        auto d = temp_dir::create("tunnel-exec-cli");
        ASSERT_TRUE(d) << d.error().message;
        scratch.emplace(std::move(*d));
    }

    run_result exec(std::vector<std::string> extra, std::vector<std::string> command,
                    cli_options options = {}) {
        return run_tunnel(exec_args(*sshd, std::move(extra), std::move(command)), options);
    }

    std::string diag(const run_result& r) const {
        return r.describe() + "\nstdout: " + r.out + "\nsshd log:\n" + sshd->log();
    }

    // An ssh config in which `target` (this fixture's sshd) is reached with
    // ProxyJump through `hop`.
    std::string config_via_jump(sshd_fixture& hop) {
        const auto hop_config = read_text_file(hop.write_ssh_config({}, "jumphost"));
        EXPECT_TRUE(hop_config) << "cannot read the jump host's ssh config";
        return sshd->write_ssh_config(
            hop_config.value_or("") + "Host target\n  ProxyJump jumphost\n", "target");
    }

    std::optional<sshd_fixture> sshd;
    std::optional<temp_dir> scratch;
};

// --- exit status -----------------------------------------------------------

TEST_F(ExecCli, SuccessExitsZeroWithOutput) {
    auto r = exec({}, {"echo", "hello"});
    ASSERT_EQ(r.exit_code, 0) << diag(r);
    EXPECT_EQ(r.out, "hello\n");
    EXPECT_EQ(r.err, "");
}

TEST_F(ExecCli, RemoteExitStatusIsPropagated) {
    auto r = exec({}, {"exit 3"});
    EXPECT_EQ(r.exit_code, 3) << diag(r);
    EXPECT_EQ(r.err, "") << "a non-zero remote status is not a tunnel error";
}

TEST_F(ExecCli, RefusedPortExits255WithOneLine) {
    auto port = unused_port();
    ASSERT_TRUE(port);
    const std::vector<std::string> args = {"exec",
                                           "-F",
                                           "/dev/null",
                                           "-p",
                                           std::to_string(*port),
                                           "-i",
                                           sshd->client_key_path(),
                                           "-o",
                                           "BatchMode=yes",
                                           "root@127.0.0.1",
                                           "--",
                                           "true"};
    const auto t0 = steady::now();
    auto r = run_tunnel(args);
    EXPECT_EQ(r.exit_code, 255) << r.describe();
    EXPECT_TRUE(one_error_line(r));
    EXPECT_NE(r.err.find(std::to_string(*port)), std::string::npos)
        << "the message names the port: " << r.err;
    EXPECT_LT(steady::now() - t0, 5s);
}

TEST_F(ExecCli, CommandKilledBySignalExits128PlusN) {
    auto r = exec({}, {"kill -TERM $$"});
    EXPECT_EQ(r.exit_code, 128 + SIGTERM) << diag(r);
}

TEST_F(ExecCli, StdoutAndStderrStaySeparate) {
    auto r = exec({}, {"echo to-out; echo to-err >&2; echo more-out"});
    ASSERT_EQ(r.exit_code, 0) << diag(r);
    EXPECT_EQ(r.out, "to-out\nmore-out\n");
    EXPECT_EQ(r.err, "to-err\n");
}

// --- what runs, where and how ----------------------------------------------

TEST_F(ExecCli, EnvValuesKeepSpacesQuotesAndDollars) {
    // The fixture's sshd has no AcceptEnv: these must travel inside the command.
    const std::string spaced = "a  b c";
    const std::string quoted = R"(it's "quoted" \back)";
    const std::string dollars = "$HOME `id` $(id) ${X} ;|&";
    auto r = exec({"--env", "SPACED=" + spaced, "--env", "QUOTED=" + quoted, "--env",
                   "DOLLARS=" + dollars, "--env", "EMPTY="},
                  {R"(printf '[%s]\n' "$SPACED" "$QUOTED" "$DOLLARS" "${EMPTY-unset}")"});
    ASSERT_EQ(r.exit_code, 0) << diag(r);
    EXPECT_EQ(r.out, "[" + spaced + "]\n[" + quoted + "]\n[" + dollars + "]\n[]\n");
}

// Regression: -i, -o, --env and --rule took every following word, so
// `tunnel exec -i KEY host -- cmd` ate TARGET and `--` ("command is
// required"). Fixed with allow_extra_args(false) on those options.
TEST_F(ExecCli, EnvFlagAfterOtherFlagsDoesNotSwallowTarget) {
    // Users put --env anywhere among the options, including right before TARGET.
    auto args = exec_args(*sshd, {"--env", "ONE=1", "--env", "TWO=2"}, {"echo $ONE$TWO"});
    auto r = run_tunnel(args);
    ASSERT_EQ(r.exit_code, 0) << diag(r);
    EXPECT_EQ(r.out, "12\n");
}

TEST_F(ExecCli, CwdChangesWorkingDirectory) {
    auto r = exec({"--cwd", scratch->path()}, {"pwd"});
    ASSERT_EQ(r.exit_code, 0) << diag(r);
    EXPECT_EQ(r.out, scratch->path() + "\n");

    auto missing = exec({"--cwd", scratch->file("no such dir")}, {"echo", "should-not-run"});
    EXPECT_NE(missing.exit_code, 0) << diag(missing);
    EXPECT_EQ(missing.out.find("should-not-run"), std::string::npos) << missing.out;
}

TEST_F(ExecCli, SudoRunsAsRoot) {
    auto r = exec({"--sudo"}, {"id", "-un"});
    ASSERT_EQ(r.exit_code, 0) << diag(r);
    EXPECT_EQ(r.out, "root\n");
}

TEST_F(ExecCli, SudoUserRunsAsThatUser) {
    auto r =
        exec({"--sudo-user", "nobody", "--env", "WHO=x y"}, {"id -un; printf '%s\\n' \"$WHO\""});
    ASSERT_EQ(r.exit_code, 0) << diag(r);
    EXPECT_EQ(r.out, "nobody\nx y\n") << "env must survive sudo's environment reset";
}

TEST_F(ExecCli, SeveralWordsAreAnArgv) {
    auto r = exec({}, {"printf", "%s\\n", "a b", "$HOME", "x;echo injected", "'q'"});
    ASSERT_EQ(r.exit_code, 0) << diag(r);
    EXPECT_EQ(r.out, "a b\n$HOME\nx;echo injected\n'q'\n");
}

TEST_F(ExecCli, OneWordIsAShellString) {
    auto r = exec({}, {"echo a | tr a b"});
    ASSERT_EQ(r.exit_code, 0) << diag(r);
    EXPECT_EQ(r.out, "b\n");
}

// Regression: with --stdin (file or -) tunnel printed the output and then
// died of SIGSEGV (exit 139): the stdin reader's lambda-coroutine captures
// were freed under the exec loop. Fixed with a named coroutine (pump_input).
TEST_F(ExecCli, StdinFromFile) {
    std::string content;
    for (int i = 0; i < 20000; ++i) content += "line " + std::to_string(i) + " \t$x'\"\n";
    const auto path = scratch->file("input.txt");
    ASSERT_TRUE(write_text_file(path, content));
    auto r = exec({"--stdin", path}, {"cat"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_EQ(r.out.size(), content.size());
    EXPECT_TRUE(r.out == content) << "stdin arrived altered";
}

TEST_F(ExecCli, StdinFromPipe) {
    auto r = exec({"--stdin", "-"}, {"tr a-z A-Z; echo done"}, with_stdin("hello\nworld\n"));
    ASSERT_EQ(r.exit_code, 0) << diag(r);
    EXPECT_EQ(r.out, "HELLO\nWORLD\ndone\n");
}

TEST_F(ExecCli, WithoutStdinTheCommandSeesEof) {
    // `cat` must not wait for input that never comes.
    auto r = exec({}, {"cat; echo eof"}, with_timeout(8'000ms));
    EXPECT_FALSE(r.timed_out) << "the command's stdin was left open";
    ASSERT_EQ(r.exit_code, 0) << diag(r);
    EXPECT_EQ(r.out, "eof\n");
}

TEST_F(ExecCli, JsonReportsStatusAndOutput) {
    auto r = exec({"--json"}, {"echo out; echo err >&2; exit 4"});
    EXPECT_EQ(r.exit_code, 4) << diag(r);
    EXPECT_EQ(count_of(r.out, "\n"), 1u) << "stdout holds just one JSON line: " << r.out;
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.out;
    EXPECT_EQ(j["destination"], "root@127.0.0.1:" + std::to_string(sshd->port()));
    EXPECT_EQ(j["exit_status"], 4);
    EXPECT_EQ(j["exit_code"], 4);
    EXPECT_TRUE(j["signal"].is_null());
    EXPECT_EQ(j["timed_out"], false);
    EXPECT_EQ(j["stdout"], "out\n");
    EXPECT_EQ(j["stderr"], "err\n");
    EXPECT_EQ(j["attempts"], 1);
    ASSERT_TRUE(j["duration_ms"].is_number_integer());
    EXPECT_GE(j["duration_ms"].get<long>(), 0);
    EXPECT_LT(j["duration_ms"].get<long>(), 10'000);
}

TEST_F(ExecCli, JsonReportsSignal) {
    auto r = exec({"--json"}, {"kill -TERM $$"});
    EXPECT_EQ(r.exit_code, 143) << diag(r);
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.out;
    EXPECT_EQ(j["signal"], "TERM");
    EXPECT_TRUE(j["exit_status"].is_null());
    EXPECT_EQ(j["exit_code"], 143);
}

TEST_F(ExecCli, JsonReportsConnectionError) {
    sshd->stop();
    auto r = exec({"--json"}, {"true"});
    EXPECT_EQ(r.exit_code, 255) << r.describe();
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.out;
    EXPECT_EQ(j["destination"], "root@127.0.0.1:" + std::to_string(sshd->port()));
    EXPECT_TRUE(j["error"].is_string());
    EXPECT_EQ(j["code"], "connection_failed");
    EXPECT_TRUE(one_error_line(r));
}

TEST_F(ExecCli, OutputIsStreamedAsItArrives) {
    const auto out = scratch->file("stream.out");
    const auto err = scratch->file("stream.err");
    auto child = spawn_tunnel(
        exec_args(*sshd, {}, {"for i in 1 2 3 4 5 6; do echo line$i; sleep 0.2; done"}),
        scratch->path(), out, err);
    ASSERT_TRUE(child) << child.error().message;
    const auto t0 = steady::now();
    std::optional<steady::time_point> first_line;
    bool running_at_first_line = false;
    while (steady::now() - t0 < 8s) {
        auto text = read_text_file(out).value_or("");
        if (!first_line && text.find("line1\n") != std::string::npos) {
            first_line = steady::now();
            running_at_first_line = child->running();
        }
        if (!child->running()) break;
        std::this_thread::sleep_for(5ms);
    }
    auto code = child->wait(2s);
    const auto ended = steady::now();
    ASSERT_TRUE(code.has_value()) << "tunnel did not exit";
    EXPECT_EQ(*code, 0) << read_text_file(err).value_or("");
    ASSERT_TRUE(first_line.has_value()) << "no output while the command ran";
    EXPECT_TRUE(running_at_first_line) << "the first line arrived only once tunnel had exited";
    EXPECT_GT(ended - *first_line, 700ms) << "output was buffered until the end";
    EXPECT_EQ(read_text_file(out).value_or(""), "line1\nline2\nline3\nline4\nline5\nline6\n");
}

// --- timeouts leave nothing behind -----------------------------------------

TEST_F(ExecCli, TimeoutKillsCommand) {
    const auto marker = "sleep " + unique_sleep_argument();
    const auto t0 = steady::now();
    auto r = exec({"--timeout", "1s"}, {marker}, with_timeout(15'000ms));
    const auto took = steady::now() - t0;
    EXPECT_EQ(r.exit_code, 124) << diag(r);
    EXPECT_FALSE(r.timed_out) << "tunnel itself hung";
    EXPECT_GE(took, 900ms);
    EXPECT_LT(took, 5s);
    EXPECT_TRUE(one_error_line(r)) << r.err;
    EXPECT_EQ(wait_until_gone(marker, 3s), "") << "left running on the host";
}

TEST_F(ExecCli, TimeoutKillsBackgroundChildren) {
    const auto marker = "sleep " + unique_sleep_argument();
    const auto t0 = steady::now();
    auto r = exec({"--timeout", "1s"}, {"sh -c '" + marker + " & " + marker + "; wait'"},
                  with_timeout(15'000ms));
    const auto took = steady::now() - t0;
    EXPECT_EQ(r.exit_code, 124) << diag(r);
    EXPECT_LT(took, 5s);
    EXPECT_EQ(wait_until_gone(marker, 3s), "") << "left running on the host";
}

// Regression: a command that ignores TERM ended with exit 137 instead of 124:
// `timeout -k` SIGKILLs its own group, so the host reports signal KILL.
TEST_F(ExecCli, TimeoutKillsCommandThatIgnoresTerm) {
    const auto marker = "sleep " + unique_sleep_argument();
    const auto t0 = steady::now();
    auto r = exec({"--timeout", "1s"}, {"trap '' TERM; " + marker + "; echo survived"},
                  with_timeout(15'000ms));
    const auto took = steady::now() - t0;
    EXPECT_EQ(r.exit_code, 124) << diag(r);
    EXPECT_EQ(r.out.find("survived"), std::string::npos);
    EXPECT_LT(took, 7s);
    EXPECT_EQ(wait_until_gone(marker, 3s), "") << "left running on the host";
}

TEST_F(ExecCli, CommandFinishingBeforeTimeoutKeepsItsStatus) {
    auto r = exec({"--timeout", "10s"}, {"echo quick; exit 5"});
    EXPECT_EQ(r.exit_code, 5) << diag(r);
    EXPECT_EQ(r.out, "quick\n");
}

// --- retries ---------------------------------------------------------------

TEST_F(ExecCli, RetriesUntilSshdComesUp) {
    sshd->stop();
    ASSERT_FALSE(port_accepts(sshd->port()));
    // The server comes (back) up a moment after tunnel starts trying.
    core::result<void> restarted = core::fail(core::errc::cancelled, "not restarted");
    std::thread starter([&] {
        std::this_thread::sleep_for(700ms);
        restarted = sshd->restart();
    });
    auto r = exec({"--retries", "5", "--json"}, {"echo up"});
    starter.join();
    ASSERT_TRUE(restarted) << restarted.error().message;
    ASSERT_EQ(r.exit_code, 0) << diag(r);
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.out;
    EXPECT_EQ(j["stdout"], "up\n");
    EXPECT_GT(j["attempts"].get<int>(), 1);
}

TEST_F(ExecCli, WithoutRetriesARefusedConnectionFails) {
    sshd->stop();
    auto r = exec({"--json"}, {"echo up"});
    EXPECT_EQ(r.exit_code, 255) << r.describe();
    EXPECT_TRUE(one_error_line(r));
}

// --- ssh_config ------------------------------------------------------------

TEST_F(ExecCli, ConfigFileAlias) {
    const auto config = sshd->write_ssh_config({}, "my-alias");
    ASSERT_FALSE(config.empty());
    auto r = run_tunnel({"exec", "-F", config, "my-alias", "--", "echo $SSH_CONNECTION"});
    ASSERT_EQ(r.exit_code, 0) << diag(r);
    // "client_ip client_port server_ip server_port"
    EXPECT_NE(r.out.find(" 127.0.0.1 " + std::to_string(sshd->port()) + "\n"), std::string::npos)
        << r.out;
}

TEST_F(ExecCli, DashOPortOverridesConfigFile) {
    auto other = sshd_fixture::start();
    ASSERT_TRUE(other) << other.error().message;
    const auto config = sshd->write_ssh_config({}, "my-alias");
    auto r = run_tunnel({"exec", "-F", config, "-o", "Port=" + std::to_string(other->port()), "-o",
                         "UserKnownHostsFile=" + other->known_hosts_path(), "my-alias", "--",
                         "echo $SSH_CONNECTION"});
    ASSERT_EQ(r.exit_code, 0) << diag(r);
    EXPECT_NE(r.out.find(" 127.0.0.1 " + std::to_string(other->port()) + "\n"), std::string::npos)
        << "reached the wrong server: " << r.out;

    // And to a port nobody listens on: refused, naming that port.
    auto dead = unused_port();
    ASSERT_TRUE(dead);
    auto refused = run_tunnel(
        {"exec", "-F", config, "-o", "Port=" + std::to_string(*dead), "my-alias", "--", "true"});
    EXPECT_EQ(refused.exit_code, 255) << refused.describe();
    EXPECT_NE(refused.err.find(std::to_string(*dead)), std::string::npos) << refused.err;
}

// Regression: with a ProxyJump the command ran but tunnel never exited (the
// jump bridge kept io.run() busy). Fixed by stopping the io_context once the
// exec has its outcome.
TEST_F(ExecCli, ProxyJumpGoesThroughTheJumpHost) {
    // Two jump hosts: one forwards, one refuses TCP forwarding. The same
    // config succeeds through the first and fails through the second, so
    // the connection really is carried by the jump host.
    auto jump = sshd_fixture::start();
    ASSERT_TRUE(jump) << jump.error().message;
    sshd_options refusing;
    refusing.extra_config = {"AllowTcpForwarding no"};
    auto no_forward = sshd_fixture::start(refusing);
    ASSERT_TRUE(no_forward) << no_forward.error().message;

    const auto jump_log_before = jump->log();
    auto r = run_tunnel({"exec", "-F", config_via_jump(*jump), "target", "--", "echo via-jump"});
    ASSERT_EQ(r.exit_code, 0) << diag(r) << "\njump log:\n" << jump->log();
    EXPECT_EQ(r.out, "via-jump\n");
    const auto jump_log = jump->log().substr(jump_log_before.size());
    EXPECT_NE(jump_log.find("Accepted publickey for root"), std::string::npos) << jump_log;
    EXPECT_NE(sshd->log().find("Accepted publickey for root"), std::string::npos);

    auto refused =
        run_tunnel({"exec", "-F", config_via_jump(*no_forward), "target", "--", "echo via-jump"});
    EXPECT_EQ(refused.exit_code, 255) << refused.describe();
    EXPECT_EQ(refused.out, "");
    EXPECT_TRUE(one_error_line(refused));
    EXPECT_NE(no_forward->log().find("Accepted publickey for root"), std::string::npos)
        << "the refusing jump host was never used:\n"
        << no_forward->log();

    jump->stop();
    auto down = run_tunnel({"exec", "-F", config_via_jump(*jump), "target", "--", "echo via-jump"});
    EXPECT_EQ(down.exit_code, 255)
        << "a stopped jump host must stop the connection: " << down.describe();
}

// Regression: through a ProxyJump the command ran, then tunnel said "internal:
// work still pending 5000 ms after the command finished" and exited 5 s late:
// the pooled session (and its jump bridge's pumps, which wait on the jump
// session) stayed open until the io_context was stopped by force.
TEST_F(ExecCli, ProxyJumpExitsAsSoonAsTheCommandIsDone) {
    auto jump = sshd_fixture::start();
    ASSERT_TRUE(jump) << jump.error().message;
    const auto config = config_via_jump(*jump);
    for (int i = 0; i < 2; ++i) {
        const auto started = steady::now();
        auto r = run_tunnel({"exec", "-F", config, "target", "--", "echo via-jump"});
        const auto took = steady::now() - started;
        ASSERT_EQ(r.exit_code, 0) << diag(r);
        EXPECT_EQ(r.out, "via-jump\n");
        EXPECT_EQ(r.err.find("still pending"), std::string::npos) << r.err;
        EXPECT_EQ(r.err, "");
        // Two connects and a command: well under a second on an idle machine;
        // the bug added 5 s.
        EXPECT_LT(took, 4s) << "took "
                            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                            << " ms";
    }
}

// More than a channel window and the jump bridge's buffers hold, both ways
// through the bridge: 8 MiB down (a command's output) and 8 MiB up (SFTP),
// byte for byte. (A bridge that cleared bytes libssh appended during its
// write broke the inner session with "Decryption error".)
TEST_F(ExecCli, ProxyJumpCarriesMegabytesBothWays) {
    auto jump = sshd_fixture::start();
    ASSERT_TRUE(jump) << jump.error().message;
    const auto config = config_via_jump(*jump);
    std::string payload(8 << 20, '\0');
    for (std::size_t i = 0; i < payload.size(); ++i)
        payload[i] = static_cast<char>((i * 2654435761u) >> 13);
    const auto local = scratch->file("payload");
    ASSERT_TRUE(write_text_file(local, payload));

    auto down = run_tunnel({"exec", "-F", config, "target", "--", "cat " + local});
    ASSERT_EQ(down.exit_code, 0) << diag(down);
    EXPECT_EQ(down.out.size(), payload.size());
    EXPECT_TRUE(down.out == payload) << "the bytes that came down differ";

    const auto remote = scratch->file("copied");
    auto up = run_tunnel({"cp", "-F", config, local, "target:" + remote});
    ASSERT_EQ(up.exit_code, 0) << diag(up);
    EXPECT_TRUE(read_text_file(remote).value_or("") == payload) << "the bytes that went up differ";
}

// --- authentication --------------------------------------------------------

TEST_F(ExecCli, AgentAuthentication) {
    auto agent = ssh_agent_fixture::start();
    ASSERT_TRUE(agent) << agent.error().message;
    ASSERT_TRUE(agent->add_key(sshd->client_key_path()));
    auto args = concat(concat({"exec"}, bare_flags(*sshd)),
                       {"-o", "UserKnownHostsFile=" + sshd->known_hosts_path(), "root@127.0.0.1",
                        "--", "echo agent"});
    auto r = run_tunnel(args, with_env(agent->env()));
    ASSERT_EQ(r.exit_code, 0) << diag(r);
    EXPECT_EQ(r.out, "agent\n");
}

TEST_F(ExecCli, EmptyAgentAndNoKeyIsPermissionDenied) {
    auto agent = ssh_agent_fixture::start();
    ASSERT_TRUE(agent) << agent.error().message;
    auto args = concat(
        concat({"exec"}, bare_flags(*sshd)),
        {"-o", "UserKnownHostsFile=" + sshd->known_hosts_path(), "root@127.0.0.1", "--", "true"});
    auto r = run_tunnel(args, with_env(agent->env()));
    EXPECT_EQ(r.exit_code, 255) << r.describe();
    EXPECT_NE(lower(r.err).find("permission denied"), std::string::npos) << r.err;
    EXPECT_TRUE(one_error_line(r));
}

TEST_F(ExecCli, WrongKeyIsPermissionDenied) {
    const auto key = fresh_key(*scratch, "stranger");
    auto args = concat(concat({"exec"}, bare_flags(*sshd)),
                       {"-i", key, "-o", "UserKnownHostsFile=" + sshd->known_hosts_path(),
                        "root@127.0.0.1", "--", "true"});
    auto r = run_tunnel(args);
    EXPECT_EQ(r.exit_code, 255) << r.describe();
    EXPECT_NE(lower(r.err).find("permission denied"), std::string::npos) << r.err;
    EXPECT_TRUE(one_error_line(r));
}

// --- host keys -------------------------------------------------------------

class ExecCliHostKeys : public ExecCli {
  protected:
    run_result with_known_hosts(const std::string& known_hosts, const std::string& policy) {
        auto args =
            concat(concat({"exec"}, bare_flags(*sshd)),
                   {"-i", sshd->client_key_path(), "-o", "UserKnownHostsFile=" + known_hosts, "-o",
                    "StrictHostKeyChecking=" + policy, "root@127.0.0.1", "--", "echo in"});
        return run_tunnel(args);
    }
    std::string name() const { return "[127.0.0.1]:" + std::to_string(sshd->port()); }
};

TEST_F(ExecCliHostKeys, UnknownHostIsRefusedUnderYes) {
    const auto known = scratch->file("known_hosts");
    ASSERT_TRUE(write_text_file(known, ""));
    auto r = with_known_hosts(known, "yes");
    EXPECT_EQ(r.exit_code, 255) << r.describe();
    EXPECT_EQ(r.out, "");
    const auto fp = sha256_fingerprint(sshd->host_pubkey(), *scratch);
    EXPECT_NE(r.err.find(fp), std::string::npos) << "expected " << fp << " in: " << r.err;
    EXPECT_TRUE(one_error_line(r));
    EXPECT_EQ(read_text_file(known).value_or("?"), "") << "yes must not record the key";
}

TEST_F(ExecCliHostKeys, AcceptNewRecordsTheKey) {
    const auto known = scratch->file("known_hosts");  // does not exist yet
    auto r = with_known_hosts(known, "accept-new");
    ASSERT_EQ(r.exit_code, 0) << diag(r);
    EXPECT_EQ(r.out, "in\n");
    const auto recorded = read_text_file(known);
    ASSERT_TRUE(recorded) << "no known_hosts file written";
    EXPECT_EQ(*recorded, name() + " " + sshd->host_pubkey() + "\n");

    // Now known: strict checking passes, and nothing is appended twice.
    auto again = with_known_hosts(known, "yes");
    ASSERT_EQ(again.exit_code, 0) << diag(again);
    auto again_new = with_known_hosts(known, "accept-new");
    ASSERT_EQ(again_new.exit_code, 0) << diag(again_new);
    EXPECT_EQ(read_text_file(known).value_or(""), *recorded);
}

TEST_F(ExecCliHostKeys, ChangedKeyIsRefusedUnderYesAndAcceptNew) {
    const auto other_key = fresh_key(*scratch, "other_host");
    const auto other_pub = read_text_file(other_key + ".pub");
    ASSERT_TRUE(other_pub);
    const auto other_line = other_pub->substr(0, other_pub->find(' ', other_pub->find(' ') + 1));
    const auto known = scratch->file("known_hosts");
    const std::string content = "# first line: a comment\n" + name() + " " + other_line + "\n";
    ASSERT_TRUE(write_text_file(known, content));

    for (const std::string policy : {"yes", "accept-new"}) {
        auto r = with_known_hosts(known, policy);
        EXPECT_EQ(r.exit_code, 255) << policy << ": " << r.describe();
        EXPECT_EQ(r.out, "") << policy;
        EXPECT_NE(r.err.find(known + ":2"), std::string::npos)
            << policy << ": expected " << known << ":2 in " << r.err;
        EXPECT_TRUE(one_error_line(r)) << policy;
        EXPECT_EQ(read_text_file(known).value_or(""), content)
            << policy << " must leave known_hosts alone";
    }

    auto r = with_known_hosts(known, "no");
    EXPECT_EQ(r.exit_code, 0) << diag(r);
    EXPECT_EQ(r.out, "in\n");
}

// --- bad input: one line, exit 2, nothing sent ------------------------------

// A TCP listener nobody answers: any connection tunnel makes is left in its
// accept queue, so counting accepts after tunnel exited is exact.
class silent_listener {
  public:
    silent_listener() {
        const auto l = listen_loopback(SOCK_NONBLOCK);
        fd_ = l.fd;
        port_ = l.port;
    }
    silent_listener(const silent_listener&) = delete;
    silent_listener& operator=(const silent_listener&) = delete;
    ~silent_listener() {
        if (fd_ >= 0) ::close(fd_);
    }
    [[nodiscard]] std::uint16_t port() const { return port_; }
    // Connections made since the last call.
    int accepted() {
        int n = 0;
        for (int c; (c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC)) >= 0; ++n) ::close(c);
        return n;
    }

  private:
    int fd_ = -1;
    std::uint16_t port_ = 0;
};

class ExecCliBadInput : public ExecCli {
  protected:
    void SetUp() override {
        ExecCli::SetUp();
        ASSERT_NE(listener.port(), 0);
    }
    // Every flag a user would pass, aimed at the silent listener.
    std::vector<std::string> args(std::vector<std::string> extra, std::vector<std::string> command,
                                  std::string target = "root@127.0.0.1") {
        auto a =
            concat({"exec", "-F", "/dev/null", "-p", std::to_string(listener.port()), "-i",
                    sshd->client_key_path(), "-o", "UserKnownHostsFile=" + sshd->known_hosts_path(),
                    "-o", "BatchMode=yes", "-o", "ConnectTimeout=2"},
                   extra);
        a.push_back(std::move(target));
        a.emplace_back("--");
        return concat(a, command);
    }
    void expect_rejected(std::vector<std::string> argv, const std::string& what) {
        SCOPED_TRACE(what);
        const auto t0 = steady::now();
        auto r = run_tunnel(std::move(argv));
        const auto took = steady::now() - t0;
        EXPECT_EQ(r.exit_code, 2) << r.describe();
        EXPECT_TRUE(one_error_line(r));
        EXPECT_EQ(r.out, "");
        // Under ConnectTimeout=2: it did not wait on the silent listener. (1 s
        // was too tight for an ASan binary starting on a loaded machine; the
        // accept count below is the real check.)
        EXPECT_LT(took, 1900ms);
        EXPECT_EQ(listener.accepted(), 0) << "tunnel connected before rejecting the input";
    }

    silent_listener listener;
};

TEST_F(ExecCliBadInput, ListenerSeesConnections) {
    // The check itself: a valid command does reach the listener (and times out there).
    auto r = run_tunnel(args({}, {"true"}));
    EXPECT_EQ(r.exit_code, 255) << r.describe();
    EXPECT_EQ(listener.accepted(), 1);
    // The message says how far the handshake got.
    EXPECT_NE(r.err.find("timed out (ConnectTimeout): the server accepted the TCP connection but "
                         "sent no SSH banner"),
              std::string::npos)
        << r.err;
}

TEST_F(ExecCliBadInput, AStallAfterTheBannerIsNamedAsAKeyExchangeTimeout) {
    // A peer that sends an SSH banner and then nothing: the message names the
    // stage (and the banner), not only "timed out".
    const auto l = listen_loopback(0);
    ASSERT_GE(l.fd, 0);
    std::thread peer([fd = l.fd] {
        const int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) return;
        const std::string banner = "SSH-2.0-Stalls_1.0\r\n";
        (void)!::write(c, banner.data(), banner.size());
        char buf[4096];
        while (::read(c, buf, sizeof buf) > 0) {
        }
        ::close(c);
    });
    auto a = args({}, {"true"});
    std::replace(a.begin(), a.end(), std::to_string(listener.port()), std::to_string(l.port));
    auto r = run_tunnel(a);
    ::shutdown(l.fd, SHUT_RDWR);
    peer.join();
    ::close(l.fd);
    EXPECT_EQ(r.exit_code, 255) << r.describe();
    EXPECT_NE(r.err.find("timed out (ConnectTimeout): the server sent its banner "
                         "(SSH-2.0-Stalls_1.0) but the key exchange did not finish"),
              std::string::npos)
        << r.err;
}

TEST_F(ExecCliBadInput, MalformedTargets) {
    expect_rejected(args({}, {"true"}, "root@"), "user@");
    expect_rejected(args({}, {"true"}, "127.0.0.1:99999"), "port out of range");
    expect_rejected(args({}, {"true"}, "a b"), "space in host");
}

TEST_F(ExecCliBadInput, UnknownFlag) {
    expect_rejected(args({"--frobnicate"}, {"true"}), "unknown flag");
}

TEST_F(ExecCliBadInput, MissingKeyFile) {
    expect_rejected(args({"-i", scratch->file("no-such-key")}, {"true"}), "missing key");
    expect_rejected(args({"-i", scratch->path()}, {"true"}), "key is a directory");
}

TEST_F(ExecCliBadInput, KeyReadableByOthers) {
    const auto key = scratch->file("open_key");
    ASSERT_TRUE(write_text_file(key, read_text_file(sshd->client_key_path()).value_or(""), 0644));
    ASSERT_EQ(::chmod(key.c_str(), 0644), 0);
    expect_rejected(args({"-i", key}, {"true"}), "key mode 0644");
}

TEST_F(ExecCliBadInput, BadDuration) {
    expect_rejected(args({"--timeout", "5x"}, {"true"}), "--timeout 5x");
    expect_rejected(args({"--timeout", "0s"}, {"true"}), "--timeout 0s");
}

TEST_F(ExecCliBadInput, UnknownSshOption) {
    expect_rejected(args({"-o", "Foo=bar"}, {"true"}), "-o Foo=bar");
}

TEST_F(ExecCliBadInput, EnvWithoutEquals) {
    expect_rejected(args({"--env", "NOEQUALS"}, {"true"}), "--env NOEQUALS");
    expect_rejected(args({"--env", "1BAD=x"}, {"true"}), "--env 1BAD=x");
}

TEST_F(ExecCliBadInput, EmptyCommand) {
    expect_rejected(args({}, {""}), "empty string");
    expect_rejected(args({}, {"  "}), "blank string");
    expect_rejected(args({}, {}), "nothing after --");
}

TEST_F(ExecCliBadInput, MissingStdinFile) {
    expect_rejected(args({"--stdin", scratch->file("nope")}, {"cat"}), "--stdin missing file");
}

TEST_F(ExecCliBadInput, DeniedByRule) {
    expect_rejected(args({"--rule", "deny:rm *"}, {"rm -rf /tmp/x"}), "deny rule");
}

}  // namespace
}  // namespace tunnel::test
