// Keyboard-interactive login (issue 14) against a real OpenSSH sshd with
// `AuthenticationMethods publickey,keyboard-interactive`: after the key,
// the server asks two questions in two rounds, a PIN ("Password: ", hidden)
// and a TOTP code ("Verification code: ", shown), the way TOTP and Duo-style
// servers do. `tunnel exec` runs in a real terminal (tmux) and must ask each
// prompt separately, with the server's echo setting, and log in; without a
// terminal, or with BatchMode, it must fail saying so.
//
// OpenSSH on Linux asks keyboard-interactive questions only through PAM, so
// sshd runs in a mount namespace of its own with the test's PAM stack on
// /etc/pam.d (pam_exec for the PIN, pam_google_authenticator for the code):
// no system password is involved and the machine's /etc is not touched.
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/hmac.h>

#include <array>
#include <chrono>
#include <ctime>
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

constexpr std::string_view totp_secret_base32 = "JBSWY3DPEHPK3PXP";  // "Hello!\xde\xad\xbe\xef"
constexpr std::string_view pin = "correct horse";

// RFC 6238 TOTP (SHA-1, 30 s, 6 digits) for `secret` at `unix_time`.
std::string totp(std::string_view secret_base32, std::time_t unix_time) {
    std::string key;
    unsigned buffer = 0;
    int bits = 0;
    for (char c : secret_base32) {
        const auto pos = std::string_view("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567").find(c);
        buffer = (buffer << 5) | static_cast<unsigned>(pos);
        bits += 5;
        if (bits >= 8) {
            key.push_back(static_cast<char>((buffer >> (bits - 8)) & 0xff));
            bits -= 8;
        }
    }
    std::array<unsigned char, 8> counter{};
    auto steps = static_cast<std::uint64_t>(unix_time / 30);
    for (int i = 7; i >= 0; --i, steps >>= 8) counter[static_cast<std::size_t>(i)] = steps & 0xff;
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    unsigned int len = 0;
    HMAC(EVP_sha1(), key.data(), static_cast<int>(key.size()), counter.data(), counter.size(),
         mac.data(), &len);
    const unsigned offset = mac[len - 1] & 0x0f;
    const std::uint32_t code = ((mac[offset] & 0x7fu) << 24) | (mac[offset + 1] << 16) |
                               (mac[offset + 2] << 8) | mac[offset + 3];
    std::string digits = std::to_string(code % 1000000);
    return std::string(6 - digits.size(), '0') + digits;
}

std::size_t count_of(const std::string& text, std::string_view needle) {
    std::size_t n = 0;
    for (auto p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
    return n;
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

class KeyboardInteractive : public ::testing::Test {
  protected:
    void SetUp() override {
        if (run({"tmux", "-V"}).exit_code != 0) GTEST_SKIP() << "tmux is not installed";
        if (::access("/usr/lib/x86_64-linux-gnu/security/pam_google_authenticator.so", F_OK) != 0 &&
            ::access("/lib/x86_64-linux-gnu/security/pam_google_authenticator.so", F_OK) != 0)
            GTEST_SKIP() << "libpam-google-authenticator is not installed (scripts/install-deps)";
        auto d = temp_dir::create("tunnel-kbdint");
        ASSERT_TRUE(d) << d.error().message;
        dir_.emplace(std::move(*d));
        const auto& dir = *dir_;
        ASSERT_TRUE(::mkdir(dir.file("pam.d").c_str(), 0755) == 0);
        ASSERT_TRUE(write_text_file(dir.file("totp"),
                                    std::string(totp_secret_base32) + "\n\" TOTP_AUTH\n", 0600));
        // pam_exec gives the PIN on stdin, NUL-terminated.
        ASSERT_TRUE(write_text_file(dir.file("check-pin"),
                                    "#!/bin/bash\nIFS= read -r -d '' pin || true\n[ \"$pin\" = '" +
                                        std::string(pin) + "' ]\n",
                                    0755));
        ASSERT_TRUE(write_text_file(
            dir.file("pam.d/sshd"),
            "auth requisite pam_exec.so expose_authtok quiet " + dir.file("check-pin") + "\n" +
                "auth required pam_google_authenticator.so secret=" + dir.file("totp") +
                " user=root echo_verification_code\n" +
                "account required pam_permit.so\nsession required pam_permit.so\n"
                "password required pam_deny.so\n"));
        ASSERT_TRUE(
            write_text_file(dir.file("pam.d/other"),
                            "auth required pam_deny.so\naccount required pam_deny.so\n"
                            "session required pam_deny.so\npassword required pam_deny.so\n"));
        sshd_options o;
        o.pam_config_dir = dir.file("pam.d");
        o.extra_config = {"UsePAM yes", "KbdInteractiveAuthentication yes",
                          "AuthenticationMethods publickey,keyboard-interactive"};
        auto s = sshd_fixture::start(o);
        ASSERT_TRUE(s) << s.error().message;
        sshd_.emplace(std::move(*s));
    }

    // exec with the fixture's key and known_hosts, prompts allowed (no BatchMode).
    std::vector<std::string> exec_args(std::vector<std::string> extra = {}) const {
        std::vector<std::string> args = {tunnel_binary(),
                                         "exec",
                                         "-F",
                                         "/dev/null",
                                         "-p",
                                         std::to_string(sshd_->port()),
                                         "-i",
                                         sshd_->client_key_path(),
                                         "-o",
                                         "UserKnownHostsFile=" + sshd_->known_hosts_path(),
                                         "-o",
                                         "GlobalKnownHostsFile=/dev/null",
                                         "-o",
                                         "StrictHostKeyChecking=yes"};
        args.insert(args.end(), extra.begin(), extra.end());
        args.insert(args.end(), {"root@127.0.0.1", "--", "echo kbd-login-$((6*7))"});
        return args;
    }

    std::optional<temp_dir> dir_;
    std::optional<sshd_fixture> sshd_;
};

TEST_F(KeyboardInteractive, EachPromptIsAskedSeparatelyWithItsEchoSetting) {
    const auto& dir = *dir_;
    const std::string script = "env -u SSH_AUTH_SOCK -u SSH_AGENT_PID HOME=" + dir.path() + " " +
                               shell_words(exec_args()) + "\necho $? > " + dir.file("rc.tmp") +
                               "\nmv " + dir.file("rc.tmp") + " " + dir.file("rc") +
                               "\nexec sleep 600\n";
    ASSERT_TRUE(write_text_file(dir.file("pane.sh"), script));
    tmux_pane pane(dir, dir.file("pane.sh"));
    ASSERT_TRUE(pane.started());

    // Round 1: the PIN, hidden.
    ASSERT_TRUE(pane.wait_for("Password:", 15s)) << pane.screen() << "\n" << sshd_->log();
    EXPECT_EQ(pane.screen().find("Verification code"), std::string::npos)
        << "the second prompt came before the first was answered:\n"
        << pane.screen();
    pane.type(std::string(pin));
    pane.enter();

    // Round 2: the code, shown as it is typed. A code typed near the end of a
    // 30 s step is still accepted: pam_google_authenticator allows one step
    // of skew.
    ASSERT_TRUE(pane.wait_for("Verification code:", 15s)) << pane.screen() << "\n" << sshd_->log();
    const std::string code = totp(totp_secret_base32, std::time(nullptr));
    pane.type(code);
    pane.enter();

    auto rc = wait_for_file(dir.file("rc"), 20s);
    ASSERT_TRUE(rc) << pane.screen() << "\n" << sshd_->log();
    EXPECT_EQ(*rc, "0\n") << pane.screen() << "\n" << sshd_->log();
    const std::string screen = pane.screen();
    EXPECT_NE(screen.find("kbd-login-42"), std::string::npos) << screen;
    EXPECT_EQ(screen.find(std::string(pin)), std::string::npos) << "the hidden answer was echoed:\n"
                                                                << screen;
    EXPECT_NE(screen.find("Verification code: " + code), std::string::npos)
        << "the visible answer was not echoed:\n"
        << screen;
    // The server saw the key first, then both answers.
    const std::string log = sshd_->log();
    EXPECT_NE(log.find("Partial publickey for root"), std::string::npos) << log;
    EXPECT_NE(log.find("Accepted keyboard-interactive/pam for root"), std::string::npos) << log;
}

TEST_F(KeyboardInteractive, WrongAnswerIsRefused) {
    const auto& dir = *dir_;
    const std::string script = "env -u SSH_AUTH_SOCK HOME=" + dir.path() + " " +
                               shell_words(exec_args()) + " 2> " + dir.file("err") +
                               "\necho $? > " + dir.file("rc.tmp") + "\nmv " + dir.file("rc.tmp") +
                               " " + dir.file("rc") + "\nexec sleep 600\n";
    ASSERT_TRUE(write_text_file(dir.file("pane.sh"), script));
    tmux_pane pane(dir, dir.file("pane.sh"));
    ASSERT_TRUE(pane.started());
    // Three wrong PINs (ssh's NumberOfPasswordPrompts): each one asked again.
    for (std::size_t attempt = 1; attempt <= 3; ++attempt) {
        const auto deadline = std::chrono::steady_clock::now() + 15s;
        while (count_of(pane.screen(), "Password:") < attempt &&
               std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(50ms);
        ASSERT_EQ(count_of(pane.screen(), "Password:"), attempt) << pane.screen();
        pane.type("wrong pin");
        pane.enter();
    }
    auto rc = wait_for_file(dir.file("rc"), 20s);
    ASSERT_TRUE(rc) << pane.screen();
    EXPECT_EQ(*rc, "255\n");
    auto err = read_text_file(dir.file("err")).value_or("");
    EXPECT_NE(err.find("permission denied"), std::string::npos) << err;
    EXPECT_NE(err.find("keyboard-interactive"), std::string::npos) << err;
}

TEST_F(KeyboardInteractive, WithoutATerminalItFailsSayingSo) {
    // setsid: no controlling terminal at all, as under cron or CI.
    std::vector<std::string> argv = {"setsid", "-w"};
    auto args = exec_args();
    argv.insert(argv.end(), args.begin(), args.end());
    run_options ro;
    ro.env = {.set = {{"HOME", dir_->path()}},
              .unset = {"SSH_AUTH_SOCK", "SSH_ASKPASS", "DISPLAY"}};
    ro.timeout = 20s;
    auto r = run(argv, ro);
    EXPECT_EQ(r.exit_code, 255) << r.describe();
    EXPECT_NE(r.err.find("asks \"Password: \" (keyboard-interactive login), but there is no "
                         "terminal to answer it"),
              std::string::npos)
        << r.err;

    auto batch_args = exec_args({"-o", "BatchMode=yes"});
    batch_args.erase(batch_args.begin());  // run_tunnel adds the binary
    cli_options co;
    co.home = dir_->path();
    auto batch = run_tunnel(batch_args, co);
    EXPECT_EQ(batch.exit_code, 255) << batch.describe();
    EXPECT_NE(batch.err.find("BatchMode=yes does not answer"), std::string::npos) << batch.err;
}

}  // namespace
}  // namespace tunnel::test
