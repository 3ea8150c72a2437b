#include "exec/command.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

namespace tunnel::exec {
namespace {

// Runs a remote command string through a local /bin/sh -c, as sshd's login shell would.
std::string run_locally(const std::string& cmd) {
    std::string quoted = "'";
    for (char c : cmd) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    quoted += "'";
    FILE* p = ::popen(("/bin/sh -c " + quoted + " 2>&1").c_str(), "r");
    std::string out;
    char buf[256];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
    return out;
}

TEST(ExecCommand, PlainCommandIsSentAsWritten) {
    command c;
    c.argv = {"ls -l | wc -l"};
    EXPECT_EQ(remote_command(c), "ls -l | wc -l");
}

TEST(ExecCommand, ArgvWordsAreQuoted) {
    command c;
    c.argv = {"printf", "%s\\n", "a b", "it's"};
    EXPECT_EQ(run_locally(remote_command(c)), "a b\nit's\n");
}

TEST(ExecCommand, EnvValuesSurviveQuotingWithoutAcceptEnv) {
    command c;
    c.argv = {"printf '%s|' \"$A\" \"$B\""};
    c.env = {{"A", "x 'y' $HOME `id`"}, {"B", "line1\nline2"}};
    EXPECT_EQ(run_locally(remote_command(c)), "x 'y' $HOME `id`|line1\nline2|");
}

TEST(ExecCommand, CwdAppliesAndFailureStopsTheCommand) {
    command c;
    c.argv = {"pwd"};
    c.cwd = "/usr/share";
    EXPECT_EQ(run_locally(remote_command(c)), "/usr/share\n");
    c.cwd = "/nonexistent dir";
    c.argv = {"echo ran"};
    auto out = run_locally(remote_command(c));
    EXPECT_EQ(out.find("ran\n"), std::string::npos) << out;
}

TEST(ExecCommand, SudoIsNonInteractiveByDefault) {
    command c;
    c.argv = {"id", "-un"};
    c.sudo_user = "www data";
    auto s = remote_command(c);
    EXPECT_EQ(s.rfind("sudo -n -u 'www data' -- ", 0), 0u) << s;
}

TEST(ExecCommand, SudoWithPasswordUsesPromptMarkers) {
    command c;
    c.argv = {"true"};
    c.sudo = true;
    c.sudo_password = true;
    sudo_markers m{"[p]:", "ready-1"};
    auto s = remote_command(c, &m);
    EXPECT_NE(s.find("sudo -S -p '[p]:' --"), std::string::npos) << s;
    EXPECT_NE(s.find("ready-1"), std::string::npos) << s;
}

TEST(ExecCommand, TimeoutWrapsWithCoreutilsTimeout) {
    command c;
    c.argv = {"sleep 5"};
    c.timeout = std::chrono::milliseconds(1500);
    auto s = remote_command(c);
    EXPECT_NE(s.find("timeout -k 2s 1.500s sh -c"), std::string::npos) << s;
    c.pty = true;
    EXPECT_NE(remote_command(c).find("timeout --foreground"), std::string::npos);
}

TEST(ExecCommand, ValidateRejectsBadInput) {
    command c;
    EXPECT_FALSE(validate(c));
    c.argv = {"  "};
    EXPECT_FALSE(validate(c));
    c.argv = {"true"};
    EXPECT_TRUE(validate(c));
    c.env = {{"1BAD", "x"}};
    auto r = validate(c);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("1BAD"), std::string::npos);
    c.env.clear();
    c.cwd = "";
    EXPECT_FALSE(validate(c));
    c.cwd.reset();
    c.timeout = std::chrono::milliseconds(0);
    EXPECT_FALSE(validate(c));
    c.timeout.reset();
    c.argv = {std::string("a\0b", 3)};
    EXPECT_FALSE(validate(c));
}

}  // namespace
}  // namespace tunnel::exec
