// `tunnel ssh` as a user runs it: the real binary against a real OpenSSH
// server on 127.0.0.1 with strict host keys, piped like `ssh host cmd`, and
// in a real terminal (tmux) for the login shell: TERM, window size and
// resizes, `~.`, and the local terminal put back however the session ends.
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "support/process.hpp"
#include "support/sshd_fixture.hpp"
#include "support/tmux_pane.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

std::vector<std::string> ssh_args(const sshd_fixture& sshd, std::vector<std::string> extra,
                                  std::vector<std::string> command) {
    std::vector<std::string> args = {"ssh"};
    auto flags = fixture_flags(sshd);
    args.insert(args.end(), flags.begin(), flags.end());
    args.insert(args.end(), extra.begin(), extra.end());
    args.emplace_back("root@127.0.0.1");
    if (!command.empty()) {
        args.emplace_back("--");
        args.insert(args.end(), command.begin(), command.end());
    }
    return args;
}

class SshCli : public ::testing::Test {
  protected:
    void SetUp() override {
        auto s = sshd_fixture::start();
        ASSERT_TRUE(s) << s.error().message;
        sshd_.emplace(std::move(*s));
    }
    sshd_fixture& sshd() { return *sshd_; }
    std::optional<sshd_fixture> sshd_;
};

TEST_F(SshCli, CommandExitStatusAndStreams) {
    auto r = run_tunnel(ssh_args(sshd(), {}, {"sh", "-c", "exit 3"}));
    EXPECT_EQ(r.exit_code, 3) << r.describe();
    EXPECT_EQ(r.err, "");

    r = run_tunnel(
        ssh_args(sshd(), {}, {"sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 5"}));
    EXPECT_EQ(r.exit_code, 5) << r.describe();
    EXPECT_EQ(r.out, "to-stdout\n");
    EXPECT_EQ(r.err, "to-stderr\n");  // no pty: nothing else, no "Connection closed"
}

TEST_F(SshCli, OneShellStringRunsAsWritten) {
    auto r = run_tunnel(ssh_args(sshd(), {}, {"echo a | tr a b; exit 4"}));
    EXPECT_EQ(r.exit_code, 4) << r.describe();
    EXPECT_EQ(r.out, "b\n");
}

TEST_F(SshCli, StdinIsPipedThrough) {
    std::string input;
    for (int i = 0; i < 20000; ++i) input += "line " + std::to_string(i) + "\n";  // ~200 KiB
    cli_options o;
    o.stdin_text = input;
    auto r = run_tunnel(ssh_args(sshd(), {}, {"cat"}), o);
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_EQ(r.out.size(), input.size());
    EXPECT_TRUE(r.out == input);
}

TEST_F(SshCli, LargeOutputArrivesIntact) {
    auto r = run_tunnel(ssh_args(sshd(), {}, {"seq 1 800000"}));
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    std::string expected;
    for (int i = 1; i <= 800000; ++i) expected += std::to_string(i) + "\n";  // ~5.3 MB
    EXPECT_EQ(r.out.size(), expected.size());
    EXPECT_TRUE(r.out == expected);
}

TEST_F(SshCli, EscapesWorkWithAForcedPtyAndOnlyThere) {
    cli_options o;
    o.stdin_text = "~.";
    o.timeout = 15s;
    const auto started = steady::now();
    auto r = run_tunnel(ssh_args(sshd(), {"-tt"}, {"sleep 20"}), o);
    EXPECT_EQ(r.exit_code, 255) << r.describe();  // as ssh after ~.
    EXPECT_LT(steady::now() - started, 10s);

    // Without a pty the same bytes are data for the command.
    o.stdin_text = "~.";
    auto plain = run_tunnel(ssh_args(sshd(), {}, {"cat"}), o);
    EXPECT_EQ(plain.exit_code, 0) << plain.describe();
    EXPECT_EQ(plain.out, "~.");
    // -e none turns them off with a pty too (a newline: the remote pty is line-buffered).
    o.stdin_text = "~.\n";
    auto none = run_tunnel(ssh_args(sshd(), {"-tt", "-e", "none"}, {"head -c 2; echo"}), o);
    EXPECT_EQ(none.exit_code, 0) << none.describe();
    EXPECT_NE(none.out.find("~."), std::string::npos) << none.describe();
}

// A command that is over before the pumps first run: every helper still
// ends, so the process exits at once and quietly (this once left a signal
// watcher waiting, and run_until_done reported pending work after 5 s).
TEST_F(SshCli, FastCommandsLeaveNothingPending) {
    for (int i = 0; i < 10; ++i) {
        const auto started = steady::now();
        auto r = run_tunnel(ssh_args(sshd(), {"-T"}, {"true"}));
        EXPECT_EQ(r.exit_code, 0) << r.describe();
        EXPECT_EQ(r.err, "") << "run " << i;
        EXPECT_LT(steady::now() - started, 4s) << "run " << i;
    }
}

// The same through a ProxyJump (exec had that bug: its pooled session was
// never closed, so the jump bridge's pumps kept the process 5 s). `tunnel ssh`
// disconnects its session, which also wakes the pumps now; this guards it.
TEST_F(SshCli, ProxyJumpLeavesNothingPending) {
    auto jump = sshd_fixture::start();
    ASSERT_TRUE(jump) << jump.error().message;
    const auto hop_config = read_text_file(jump->write_ssh_config({}, "jumphost"));
    ASSERT_TRUE(hop_config);
    const auto config =
        sshd().write_ssh_config(*hop_config + "Host target\n  ProxyJump jumphost\n", "target");
    const auto started = steady::now();
    auto r = run_tunnel({"ssh", "-F", config, "-T", "target", "--", "echo via-jump"});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_EQ(r.out, "via-jump\n");
    EXPECT_EQ(r.err, "");
    EXPECT_LT(steady::now() - started, 4s);
}

TEST_F(SshCli, SignalDeathIs128PlusN) {
    auto r = run_tunnel(ssh_args(sshd(), {}, {"sh", "-c", "kill -TERM $$"}));
    EXPECT_EQ(r.exit_code, 128 + SIGTERM) << r.describe();
}

TEST_F(SshCli, ForcedPtyWithoutTerminalWarnsAsSsh) {
    auto r =
        run_tunnel(ssh_args(sshd(), {"-t"}, {"sh", "-c", "test -t 0 && echo tty || echo notty"}));
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_EQ(r.out, "notty\n");
    EXPECT_NE(r.err.find("Pseudo-terminal will not be allocated because stdin is not a terminal."),
              std::string::npos)
        << r.err;

    // -tt allocates one anyway; -T never warns.
    auto tt = run_tunnel(ssh_args(sshd(), {"-tt"}, {"sh", "-c", "test -t 0 && echo tty"}));
    EXPECT_EQ(tt.exit_code, 0) << tt.describe();
    EXPECT_NE(tt.out.find("tty"), std::string::npos) << tt.describe();
    auto no = run_tunnel(ssh_args(sshd(), {"-T"}, {"true"}));
    EXPECT_EQ(no.exit_code, 0) << no.describe();
    EXPECT_EQ(no.err, "");
}

TEST_F(SshCli, LoginShellWithoutTerminalReadsStdin) {
    cli_options o;
    o.stdin_text = "echo from-shell-$((6*7))\nexit 6\n";
    auto r = run_tunnel(ssh_args(sshd(), {}, {}), o);
    EXPECT_EQ(r.exit_code, 6) << r.describe();
    EXPECT_NE(r.out.find("from-shell-42"), std::string::npos) << r.describe();
}

TEST_F(SshCli, BadFlagsSayWhatToDo) {
    auto e = run_tunnel(ssh_args(sshd(), {"-e", "ab"}, {"true"}));
    EXPECT_EQ(e.exit_code, 2) << e.describe();
    EXPECT_NE(e.err.find("-e"), std::string::npos) << e.err;
    EXPECT_NE(e.err.find("none"), std::string::npos) << e.err;

    auto both = run_tunnel(ssh_args(sshd(), {"-t", "-T"}, {"true"}));
    EXPECT_EQ(both.exit_code, 2) << both.describe();
    EXPECT_NE(both.err.find("-T"), std::string::npos) << both.err;
}

TEST_F(SshCli, UnknownHostKeyIsRefusedWith255) {
    auto r = run_tunnel({"ssh", "-F", "/dev/null", "-p", std::to_string(sshd().port()), "-i",
                         sshd().client_key_path(), "-o", "UserKnownHostsFile=/dev/null", "-o",
                         "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o",
                         "BatchMode=yes", "root@127.0.0.1", "--", "echo", "ran"});
    EXPECT_EQ(r.exit_code, 255) << r.describe();
    EXPECT_EQ(r.out, "");
}

// ---- in a real terminal --------------------------------------------------

// The terminal settings of `tty` as `stty -g` prints them.
std::string stty_of(const std::string& tty) {
    auto r = run({"stty", "-g", "-F", tty});
    return r.ok() ? r.out : "stty failed: " + r.describe();
}

// The first process named `comm` below `pid` (children, then grandchildren...).
pid_t find_descendant(pid_t pid, const std::string& comm, int depth = 4) {
    if (pid <= 0 || depth == 0) return -1;
    auto children = run({"pgrep", "-P", std::to_string(pid)});
    std::vector<pid_t> pids;
    for (std::size_t start = 0; start < children.out.size();) {
        auto end = children.out.find('\n', start);
        if (end == std::string::npos) end = children.out.size();
        pids.push_back(std::atoi(children.out.substr(start, end - start).c_str()));
        start = end + 1;
    }
    for (pid_t child : pids) {
        auto name = read_text_file("/proc/" + std::to_string(child) + "/comm");
        if (name && *name == comm + "\n") return child;
    }
    for (pid_t child : pids)
        if (pid_t found = find_descendant(child, comm, depth - 1); found > 0) return found;
    return -1;
}

std::string shell_words(const std::vector<std::string>& words) {
    std::string out;
    for (const auto& w : words) {
        std::string q = "'";
        for (char c : w) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
        out += (out.empty() ? "" : " ") + q + "'";
    }
    return out;
}

class SshCliTerminal : public SshCli {
  protected:
    void SetUp() override {
        if (run({"tmux", "-V"}).exit_code != 0) GTEST_SKIP() << "tmux is not installed";
        SshCli::SetUp();
        auto d = temp_dir::create("tunnel-ssh-tty");
        ASSERT_TRUE(d) << d.error().message;
        dir_.emplace(std::move(*d));
    }

    // The pane runs: stty -g > before; tunnel ssh ...; echo $? > rc; stty -g > after.
    std::string write_script(const std::vector<std::string>& extra = {}) {
        auto args = ssh_args(sshd(), extra, {});
        args.insert(args.begin(), tunnel_binary());
        const auto& d = *dir_;
        std::string script = "stty -g > " + d.file("before") + "\n" +
                             "env -u SSH_AUTH_SOCK -u SSH_AGENT_PID HOME=" + d.path() +
                             " TERM=xterm-256color " + shell_words(args) + "\n" + "echo $? > " +
                             d.file("rc.tmp") + "\n" + "stty -g > " + d.file("after") + "\n" +
                             "mv " + d.file("rc.tmp") + " " + d.file("rc") + "\n" +
                             "exec sleep 600\n";
        EXPECT_TRUE(write_text_file(d.file("pane.sh"), script));
        return d.file("pane.sh");
    }

    // Types a command and waits for its output in the remote shell.
    bool remote_ready(const tmux_pane& pane) {
        pane.type("echo READY-$((40+2))");
        pane.enter();
        return pane.wait_for("READY-42", 15s);
    }

    std::string file(const std::string& name) const { return dir_->file(name); }
    std::optional<temp_dir> dir_;
};

TEST_F(SshCliTerminal, ShellGetsTermAndSizeFollowsResizeAndTildeDotDisconnects) {
    tmux_pane pane(*dir_, write_script());
    ASSERT_TRUE(pane.started());
    ASSERT_TRUE(remote_ready(pane)) << pane.screen() << "\nsshd log:\n" << sshd().log();

    const std::string before = wait_for_file(file("before"), 1s).value_or("no before file");
    const std::string tty = pane.pane_tty();
    EXPECT_NE(stty_of(tty), before) << "the local terminal is not in raw mode during the session";

    pane.type("echo \"T=$TERM\"; stty size");
    pane.enter();
    EXPECT_TRUE(pane.wait_for("T=xterm-256color")) << pane.screen();
    EXPECT_TRUE(pane.wait_for("30 100")) << pane.screen();

    ASSERT_TRUE(pane.resize(120, 40));
    bool resized = false;
    for (int attempt = 0; attempt < 20 && !resized; ++attempt) {
        pane.type("stty size");
        pane.enter();
        resized = pane.wait_for("40 120", 500ms);
    }
    EXPECT_TRUE(resized) << pane.screen();

    pane.enter();
    pane.type("~.");
    auto rc = wait_for_file(file("rc"));
    ASSERT_TRUE(rc) << "tunnel did not exit after ~.\n" << pane.screen();
    EXPECT_EQ(*rc, "255\n");
    auto after = read_text_file(file("after"));
    ASSERT_TRUE(after);
    EXPECT_EQ(*after, before) << "the terminal was not restored";
}

TEST_F(SshCliTerminal, TildeQuestionMarkShowsHelpAndCustomEscape) {
    tmux_pane pane(*dir_, write_script({"-e", "%"}));
    ASSERT_TRUE(pane.started());
    ASSERT_TRUE(remote_ready(pane)) << pane.screen();
    pane.enter();
    pane.type("%?");
    EXPECT_TRUE(pane.wait_for("%.   - terminate connection")) << pane.screen();
    pane.enter();
    pane.type("~.; echo still-$((1+1))");  // ~ is ordinary with -e %
    pane.enter();
    EXPECT_TRUE(pane.wait_for("still-2")) << pane.screen();
    pane.type("exit 7");
    pane.enter();
    auto rc = wait_for_file(file("rc"));
    ASSERT_TRUE(rc) << pane.screen();
    EXPECT_EQ(*rc, "7\n");
    EXPECT_EQ(read_text_file(file("after")).value_or("no after file"),
              read_text_file(file("before")).value_or("no before file"));
}

TEST_F(SshCliTerminal, TerminalIsRestoredWhenTheServerDies) {
    tmux_pane pane(*dir_, write_script());
    ASSERT_TRUE(pane.started());
    ASSERT_TRUE(remote_ready(pane)) << pane.screen();
    const std::string before = wait_for_file(file("before"), 1s).value_or("no before file");
    EXPECT_NE(stty_of(pane.pane_tty()), before);

    sshd().stop();  // kills the listener and the session it forked
    auto rc = wait_for_file(file("rc"));
    ASSERT_TRUE(rc) << "tunnel did not notice the server went away\n" << pane.screen();
    EXPECT_EQ(*rc, "255\n");
    EXPECT_EQ(read_text_file(file("after")).value_or("no after file"), before);
}

TEST_F(SshCliTerminal, TerminalIsRestoredOnSigterm) {
    tmux_pane pane(*dir_, write_script());
    ASSERT_TRUE(pane.started());
    ASSERT_TRUE(remote_ready(pane)) << pane.screen();
    const std::string before = wait_for_file(file("before"), 1s).value_or("no before file");

    auto pane_pid = pane.tmux({"display-message", "-p", "-t", "t", "#{pane_pid}"}).out;
    const pid_t tunnel_pid = find_descendant(std::atoi(pane_pid.c_str()), "tunnel");
    ASSERT_GT(tunnel_pid, 0) << "no tunnel process under the pane's shell " << pane_pid;
    ASSERT_EQ(::kill(tunnel_pid, SIGTERM), 0);

    auto rc = wait_for_file(file("rc"));
    ASSERT_TRUE(rc) << pane.screen();
    EXPECT_EQ(*rc, "255\n");
    EXPECT_EQ(read_text_file(file("after")).value_or("no after file"), before);
}

}  // namespace
}  // namespace tunnel::test
