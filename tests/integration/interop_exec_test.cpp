// `tunnel exec` against every real SSH server (interop_test_support.hpp):
// exit codes, commands killed by a signal (compared with what OpenSSH's ssh
// sees from the same server), stdin passed through, and large stdout and
// stderr at once.
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "interop_test_support.hpp"
#include "support/tcp_servers.hpp"

namespace tunnel::test::interop {
namespace {

class InteropExec : public InteropTest {};

TEST_P(InteropExec, ExitCodesPassThroughAsSshHasThem) {
    for (const int code : {3, 255}) {
        SCOPED_TRACE("exit " + std::to_string(code));
        const auto command = "echo out; exit " + std::to_string(code);
        const auto ours = run_tunnel(exec(command));
        EXPECT_EQ(ours.exit_code, code) << diag(ours);
        EXPECT_EQ(ours.out, "out\n") << diag(ours);
        // 255 is also tunnel's own "connection failed": it must not print an
        // error of its own when the command chose it.
        EXPECT_EQ(ours.err, "") << diag(ours);
        const auto theirs = run_ssh(command);
        EXPECT_EQ(theirs.exit_code, code) << "ssh: " << theirs.describe();
    }
}

// A command that kills itself. OpenSSH sshd, dropbear and tinysshd all
// answer with exit-signal (no exit-status); `ssh` then exits 255 and tunnel
// reports the signal and 128 + its number, as a shell would. A server that
// sent neither must still give a non-zero exit (255), never 0.
TEST_P(InteropExec, CommandKilledBySignalIsReportedWithItsName) {
    struct expectation {
        const char* name;
        int number;
    };
    for (const auto& [name, number] : {expectation{"TERM", 15}, expectation{"KILL", 9}}) {
        SCOPED_TRACE(std::string("kill -") + name);
        const auto command = std::string("echo before; kill -") + name + " $$; echo after";
        const auto theirs = run_ssh(command, {"-v"});
        const bool sent_signal = theirs.err.find("rtype exit-signal") != std::string::npos;
        const bool sent_status = theirs.err.find("rtype exit-status") != std::string::npos;
        EXPECT_EQ(theirs.exit_code, 255) << "ssh: " << theirs.describe();
        EXPECT_EQ(theirs.out, "before\n");

        const auto ours = run_tunnel(exec(command, {"--json"}));
        auto j = nlohmann::json::parse(ours.out, nullptr, false);
        ASSERT_FALSE(j.is_discarded()) << diag(ours);
        EXPECT_EQ(j["stdout"], "before\n");
        if (sent_signal) {
            EXPECT_EQ(j["signal"], name) << ours.out;
            EXPECT_TRUE(j["exit_status"].is_null()) << ours.out;
            EXPECT_EQ(ours.exit_code, 128 + number) << diag(ours);
        } else if (sent_status) {
            EXPECT_TRUE(j["signal"].is_null()) << ours.out;
            EXPECT_NE(ours.exit_code, 0) << diag(ours);
        } else {
            EXPECT_EQ(ours.exit_code, 255) << "no exit-status nor exit-signal: " << diag(ours);
        }
        RecordProperty(std::string("server_sends_exit_signal_") + name, sent_signal ? 1 : 0);
        if (number == 15) {  // without --json: the same code, and the output as it came
            const auto plain = run_tunnel(exec(command));
            EXPECT_EQ(plain.exit_code, ours.exit_code) << diag(plain);
            EXPECT_EQ(plain.out, "before\n");
        }
    }
}

// Stdin is streamed to the command and closed at its end; the command sends
// it back at the same time, so both directions' windows are in use at once.
TEST_P(InteropExec, StdinIsPassedThroughWhileOutputFlows) {
    const auto data = random_bytes(2u << 20, 21);
    const auto input = file("stdin.bin");
    ASSERT_TRUE(write_text_file(input, data));
    const auto start = steady::now();
    const auto r = run_tunnel(exec("cat; echo end >&2", {"--stdin", input}));
    ASSERT_EQ(r.exit_code, 0) << diag(r);
    EXPECT_EQ(r.out.size(), data.size());
    EXPECT_EQ(sha256_hex(r.out), sha256_hex(data)) << "stdin arrived altered";
    EXPECT_EQ(r.err, "end\n") << "the command saw EOF on stdin and went on";
    std::printf("%s: 2 MiB through stdin and back in %lld ms\n",
                std::string(server().name()).c_str(), ms_since(start));

    const auto piped = run_tunnel(exec("wc -c", {"--stdin", "-"}),
                                  cli_options{.env = {}, .stdin_text = "twelve bytes", .home = {}});
    ASSERT_EQ(piped.exit_code, 0) << diag(piped);
    EXPECT_EQ(piped.out.find_first_not_of(' '), piped.out.find("12")) << piped.out;
}

// 4 MiB on stdout and 4 MiB on stderr, interleaved: neither stream may be
// stalled behind the other's window.
TEST_P(InteropExec, LargeStdoutAndStderrArriveWhole) {
    const auto data = random_bytes(4u << 20, 22);
    const auto source = file("output.bin");
    ASSERT_TRUE(write_text_file(source, data));
    const auto start = steady::now();
    const auto r = run_tunnel(exec("cat " + source + " & cat " + source + " >&2; wait"));
    ASSERT_EQ(r.exit_code, 0) << diag(r).substr(0, 4000);
    EXPECT_EQ(r.out.size(), data.size());
    EXPECT_EQ(r.err.size(), data.size());
    EXPECT_EQ(sha256_hex(r.out), sha256_hex(data));
    EXPECT_EQ(sha256_hex(r.err), sha256_hex(data));
    std::printf("%s: 4 MiB stdout + 4 MiB stderr in %lld ms\n",
                std::string(server().name()).c_str(), ms_since(start));
}

INSTANTIATE_TEST_SUITE_P(Servers, InteropExec, all_servers(), test_name);

}  // namespace
}  // namespace tunnel::test::interop
