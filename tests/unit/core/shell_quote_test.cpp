#include "core/shell_quote.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <string>
#include <vector>

namespace tunnel::core {
namespace {

// Runs `command` with /bin/sh (popen uses `sh -c`) and returns its stdout.
std::string run_sh(const std::string& command) {
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) {
        ADD_FAILURE() << "popen failed";
        return {};
    }
    std::string out;
    char buffer[4096];
    std::size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
    const int status = ::pclose(pipe);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << command;
    return out;
}

const std::vector<std::string> tricky = {
    "plain",
    "",
    " ",
    "two words",
    "it's",
    "'",
    "''",
    "'\\''",
    "\"double\"",
    "back\\slash\\",
    "$HOME",
    "${HOME}",
    "$(echo injected)",
    "`echo injected`",
    "*",
    "?",
    "[a-z]*",
    "~",
    "~root",
    "line1\nline2",
    "trailing newline\n",
    "\ttab",
    "semi;colon && amp | pipe > out < in",
    "#comment",
    "!bang",
    "a=b",
    "-n",
    "--",
    "-e \\n",
    "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x9a\x80",
    "\x01\x7f\xff",
    "{a,b}",
    "%s%d",
};

TEST(ShellQuote, LeavesSafeWordsBare) {
    EXPECT_EQ(shell_quote("abcXYZ019"), "abcXYZ019");
    EXPECT_EQ(shell_quote("_@%+=:,./-"), "_@%+=:,./-");
    EXPECT_EQ(shell_quote("/usr/bin/env"), "/usr/bin/env");
    EXPECT_EQ(shell_quote("user@host:22"), "user@host:22");
    EXPECT_EQ(shell_quote("-n"), "-n");
}

TEST(ShellQuote, QuotesEverythingElse) {
    EXPECT_EQ(shell_quote(""), "''");
    EXPECT_EQ(shell_quote("two words"), "'two words'");
    EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
    EXPECT_EQ(shell_quote("'"), "''\\'''");
    EXPECT_EQ(shell_quote("$HOME"), "'$HOME'");
    EXPECT_EQ(shell_quote("*"), "'*'");
    EXPECT_EQ(shell_quote("~"), "'~'");
    EXPECT_EQ(shell_quote("caf\xc3\xa9"), "'caf\xc3\xa9'");
    EXPECT_EQ(shell_quote("a\nb"), "'a\nb'");
}

TEST(ShellQuote, JoinQuotesEachWord) {
    EXPECT_EQ(shell_join({}), "");
    EXPECT_EQ(shell_join({""}), "''");
    EXPECT_EQ(shell_join({"", ""}), "'' ''");
    EXPECT_EQ(shell_join({"ls", "-la", "my dir"}), "ls -la 'my dir'");
    EXPECT_EQ(shell_join({"echo", "it's"}), "echo 'it'\\''s'");
}

TEST(ShellQuote, EachTrickyWordRoundTripsThroughSh) {
    for (const auto& word : tricky) {
        // One word, printed without a newline so trailing newlines survive.
        EXPECT_EQ(run_sh("printf '%s' " + shell_quote(word)), word) << shell_quote(word);
    }
}

TEST(ShellQuote, JoinedWordsRoundTripThroughShAsSeparateArguments) {
    std::vector<std::string> argv = {"printf", "<%s>"};
    std::string expected;
    for (const auto& word : tricky) {
        argv.push_back(word);
        expected += "<" + word + ">";
    }
    EXPECT_EQ(run_sh(shell_join(argv)), expected);
}

TEST(ShellQuote, ValidEnvNames) {
    for (const char* name : {"A", "_", "_x", "PATH", "LC_ALL", "a1", "x_9_Y"}) {
        EXPECT_TRUE(is_valid_env_name(name)) << name;
    }
    for (const char* name : {"", "1A", "A-B", "A B", "A=B", "A.B", "$A", "caf\xc3\xa9", "A\n"}) {
        EXPECT_FALSE(is_valid_env_name(name)) << name;
    }
}

}  // namespace
}  // namespace tunnel::core
