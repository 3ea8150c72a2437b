// The test-host harness itself: hosts boot with systemd and sshd, keep their
// disk across stop/boot, can be killed, reach apt only through the proxy, and
// are reachable by the tunnel CLI.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "support/test_hosts.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    return s;
}

TEST(TestHosts, BootWithSystemdAndSshd) {
    auto hosts = test_hosts::start(2);
    ASSERT_TRUE(hosts) << hosts.error().message;
    ASSERT_EQ(hosts->size(), 2u);
    EXPECT_NE((*hosts)[0].ip, (*hosts)[1].ip);
    for (std::size_t i = 0; i < hosts->size(); ++i) {
        auto r =
            hosts->ssh(i, "hostname; systemctl is-system-running --wait; cat /proc/1/comm; id -un");
        ASSERT_TRUE(r.ok()) << r.describe();
        EXPECT_EQ(r.out, fmt::format("{}\nrunning\nsystemd\nroot\n", (*hosts)[i].name)) << r.out;
        // nsenter reaches the same host without ssh.
        auto e = hosts->exec(i, {"cat", "/etc/hostname"});
        ASSERT_TRUE(e.ok()) << e.describe();
        EXPECT_EQ(trimmed(e.out), (*hosts)[i].name);
    }
}

TEST(TestHosts, StopFastThenBootKeepsTheDisk) {
    auto hosts = test_hosts::start(1);
    ASSERT_TRUE(hosts) << hosts.error().message;
    ASSERT_TRUE(hosts->ssh(0, "echo kept > /root/marker").ok());
    ASSERT_TRUE(hosts->stop(0, test_hosts::stop_mode::fast));
    EXPECT_FALSE(hosts->running(0));
    auto down = hosts->ssh(0, "true", std::chrono::seconds(20));
    EXPECT_FALSE(down.ok()) << "a stopped host still answered ssh";
    ASSERT_TRUE(hosts->boot(0));
    EXPECT_TRUE(hosts->running(0));
    auto r = hosts->ssh(0, "cat /root/marker");
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(r.out, "kept\n");
}

TEST(TestHosts, OrderlyRestart) {
    auto hosts = test_hosts::start(1);
    ASSERT_TRUE(hosts) << hosts.error().message;
    auto first =
        hosts->ssh(0, "cat /proc/1/stat | cut -d' ' -f22");  // init start time: changes per boot
    ASSERT_TRUE(first.ok()) << first.describe();
    ASSERT_TRUE(hosts->restart(0));
    auto second = hosts->ssh(0, "cat /proc/1/stat | cut -d' ' -f22");
    ASSERT_TRUE(second.ok()) << second.describe();
    EXPECT_NE(first.out, second.out);
}

TEST(TestHosts, AptWorksOnlyThroughTheHarnessProxy) {
    auto hosts = test_hosts::start(1);
    ASSERT_TRUE(hosts) << hosts.error().message;
    auto r = hosts->ssh(0,
                        "apt-get update -q -o Acquire::Retries=2 >/tmp/apt.log 2>&1; echo rc=$?; "
                        "apt-cache policy sudo | grep -c Candidate",
                        std::chrono::seconds(120));
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(r.out, "rc=0\n1\n") << hosts->ssh(0, "cat /tmp/apt.log").out;
    // Any other destination is refused by the proxy; without it there is no route out.
    auto other = hosts->ssh(0,
                            "exec 3<>/dev/tcp/10.213.79.1/3142 && printf 'GET http://example.com/ "
                            "HTTP/1.0\\r\\n\\r\\n' >&3 "
                            "&& head -1 <&3");
    ASSERT_TRUE(other.ok()) << other.describe();
    EXPECT_NE(other.out.find("403"), std::string::npos) << other.out;
    auto direct =
        hosts->ssh(0, "timeout 5 bash -c 'exec 3<>/dev/tcp/151.101.2.132/80' 2>&1; echo rc=$?");
    ASSERT_TRUE(direct.ok()) << direct.describe();
    EXPECT_NE(direct.out, "rc=0\n") << "a test host reached the internet directly";
}

TEST(TestHosts, TunnelExecReachesAHost) {
    auto hosts = test_hosts::start(1);
    ASSERT_TRUE(hosts) << hosts.error().message;
    auto args = hosts->tunnel_flags(0);
    args.insert(args.begin(), "exec");
    args.push_back("root@" + (*hosts)[0].ip);
    args.insert(args.end(), {"--", "hostname"});
    cli_options o;
    o.timeout = std::chrono::seconds(60);  // a loaded CI machine: first logins can be slow
    const auto t0 = std::chrono::steady_clock::now();
    auto r = run_tunnel(args, o);
    ASSERT_TRUE(r.ok()) << r.describe() << " after "
                        << std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now() - t0)
                               .count()
                        << " ms";
    EXPECT_EQ(trimmed(r.out), (*hosts)[0].name);
}

}  // namespace
}  // namespace tunnel::test
