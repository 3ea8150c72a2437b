// ProxyCommand (ssh_config or -o): the session runs over a program's stdin and
// stdout, here socat to the real sshd, as `cloudflared access ssh`,
// `tailscale nc` or `nc -X connect` would be used. Host keys are still checked
// against the target's name, the program is hung up when the session ends,
// and a program that fails is named with its exit status.
#include <signal.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "support/process.hpp"
#include "support/sshd_fixture.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;

class ProxyCommand : public ::testing::Test {
  protected:
    void SetUp() override {
        auto s = sshd_fixture::start();
        ASSERT_TRUE(s) << s.error().message;
        sshd.emplace(std::move(*s));
        auto d = temp_dir::create("tunnel-proxy-command");
        ASSERT_TRUE(d) << d.error().message;
        dir.emplace(std::move(*d));
    }

    // The flags of `tunnel exec` without the target.
    std::vector<std::string> flags(const std::string& proxy_command) const {
        return {"-F", "/dev/null",
                "-p", std::to_string(sshd->port()),
                "-i", sshd->client_key_path(),
                "-o", "UserKnownHostsFile=" + sshd->known_hosts_path(),
                "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes",
                "-o", "ProxyCommand=" + proxy_command};
    }

    run_result exec(const std::string& proxy_command, const std::string& command) {
        std::vector<std::string> a{"exec"};
        for (auto& f : flags(proxy_command)) a.push_back(f);
        a.insert(a.end(), {"root@127.0.0.1", "--", command});
        return run_tunnel(a);
    }

    // A proxy that records its pid and forwards to %h:%p with socat.
    std::string socat_proxy(const std::string& pidfile, const std::string& after = "") const {
        return "sh -c 'echo $$ > " + pidfile + "; socat - TCP:%h:%p" + after + "'";
    }

    std::string diag(const run_result& r) const {
        return r.describe() + "\nstdout: " + r.out + "\nsshd log:\n" + sshd->log();
    }

    std::optional<sshd_fixture> sshd;
    std::optional<temp_dir> dir;
};

bool process_exists(pid_t pid) {
    return ::kill(pid, 0) == 0 || errno != ESRCH;
}

TEST_F(ProxyCommand, ExecRunsOverTheProgramAndHangsItUpAtTheEnd) {
    const auto pidfile = dir->file("proxy.pid");
    // `; sleep ...` keeps the shell alive after socat sees EOF: only tunnel
    // hanging it up ends it. An odd duration, so that the clean-up below
    // cannot match anyone else's `sleep 300`.
    auto r = exec(socat_proxy(pidfile, "; sleep 300.0417"), "echo over-proxy; exit 5");
    EXPECT_EQ(r.exit_code, 5) << diag(r);
    EXPECT_EQ(r.out, "over-proxy\n");
    auto pid_text = read_text_file(pidfile);
    ASSERT_TRUE(pid_text) << "the ProxyCommand did not run";
    const pid_t pid = std::stoi(*pid_text);
    EXPECT_FALSE(process_exists(pid)) << "ProxyCommand pid " << pid << " outlived tunnel";
    (void)run({"pkill", "-f", "sleep 300[.]0417$"});
}

TEST_F(ProxyCommand, TokensComeFromTheConfigAndCopiesWork) {
    // %r@%h:%p from an ssh_config Host entry, as users write it.
    const auto config = dir->file("ssh_config");
    const auto record = dir->file("tokens");
    ASSERT_TRUE(write_text_file(
        config,
        "Host behind-proxy\n"
        "  HostName 127.0.0.1\n  User root\n  Port " +
            std::to_string(sshd->port()) + "\n  IdentityFile " + sshd->client_key_path() +
            "\n  IdentitiesOnly yes\n  UserKnownHostsFile " + sshd->known_hosts_path() +
            "\n  BatchMode yes\n"
            "  ProxyCommand sh -c 'echo %r@%h:%p/%n > " +
            record + "; exec socat - TCP:%h:%p'\n"));
    auto r = run_tunnel({"exec", "-F", config, "behind-proxy", "--", "echo", "ok"});
    ASSERT_EQ(r.exit_code, 0) << diag(r);
    EXPECT_EQ(r.out, "ok\n");
    EXPECT_EQ(read_text_file(record).value_or(""),
              "root@127.0.0.1:" + std::to_string(sshd->port()) + "/behind-proxy\n");

    // SFTP runs over the same kind of stream.
    const auto local = dir->file("payload");
    std::string payload(3 << 20, '\0');
    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 131 % 251);
    ASSERT_TRUE(write_text_file(local, payload));
    const auto remote = dir->file("copied");
    auto cp = run_tunnel({"cp", "-F", config, local, "behind-proxy:" + remote});
    ASSERT_EQ(cp.exit_code, 0) << diag(cp);
    EXPECT_EQ(read_text_file(remote).value_or(""), payload);
}

TEST_F(ProxyCommand, AProgramThatFailsIsNamedWithItsStatusAndItsStderrPassesThrough) {
    auto r = exec("sh -c 'echo no-route-to-bastion >&2; exit 7'", "true");
    EXPECT_EQ(r.exit_code, 255) << diag(r);
    EXPECT_NE(r.err.find("no-route-to-bastion"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("exited with status 7"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
}

TEST_F(ProxyCommand, HostKeysAreStillCheckedAgainstTheTarget) {
    // The proxy reaches the real server, but known_hosts holds another key
    // for it: refused as without a proxy.
    const auto other = dir->file("other_known_hosts");
    auto keygen = run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", dir->file("k")});
    ASSERT_TRUE(keygen.ok()) << keygen.describe();
    auto pub = read_text_file(dir->file("k.pub"));
    ASSERT_TRUE(pub);
    ASSERT_TRUE(write_text_file(other, "[127.0.0.1]:" + std::to_string(sshd->port()) + " " +
                                           pub->substr(0, pub->rfind(' ')) + "\n"));
    std::vector<std::string> a{"exec"};
    for (auto& f : flags(socat_proxy(dir->file("p.pid")))) a.push_back(f);
    for (auto& f : a)
        if (f.rfind("UserKnownHostsFile=", 0) == 0) f = "UserKnownHostsFile=" + other;
    a.insert(a.end(), {"root@127.0.0.1", "--", "echo", "should-not-run"});
    auto r = run_tunnel(a);
    EXPECT_EQ(r.exit_code, 255) << diag(r);
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find("HOST KEY CHANGED for [127.0.0.1]:"), std::string::npos) << r.err;
}

TEST_F(ProxyCommand, UnknownTokenIsRefusedBeforeAnythingRuns) {
    const auto marker = dir->file("ran");
    auto r = exec("sh -c 'touch " + marker + "' %d", "true");
    EXPECT_EQ(r.exit_code, 2) << diag(r);
    EXPECT_NE(r.err.find("unknown token %d"), std::string::npos) << r.err;
    EXPECT_FALSE(read_text_file(marker)) << "the command ran";
}

}  // namespace
}  // namespace tunnel::test
