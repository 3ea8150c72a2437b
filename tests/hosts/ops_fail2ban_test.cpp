// fail2ban and auto_updates on a real test host (both install packages through
// the harness's apt proxy, so they share one host and one plan).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "ops_support.hpp"

namespace tunnel::test {
namespace {

using namespace ops_hosts;

TEST(OpsHostFail2ban, Fail2banAndAutoUpdatesApplyReapplyCheck) {
    auto hosts = test_hosts::start(1);
    ASSERT_TRUE(hosts) << hosts.error().message;
    auto dir = temp_dir::create("ops-f2b");
    ASSERT_TRUE(dir);
    auto inv = hosts->write_inventory("one");
    ASSERT_TRUE(inv);
    const auto h = (*hosts)[0].name;
    // The mirror is reached through the harness's proxy: retry transient fetch
    // failures, and show apt's own words when it still fails.
    auto update =
        hosts->ssh(0,
                   "apt-get update -q -o Acquire::Retries=3 >/tmp/apt-update.log 2>&1 && echo ok"
                   " || tail -n 5 /tmp/apt-update.log",
                   std::chrono::minutes(3));
    ASSERT_EQ(update.out, "ok\n") << "apt-get update on the test host failed:\n"
                                  << update.out << update.err;
    auto plan = write_file(*dir, "f2b.yaml", R"(- name: ban ssh guessers
  fail2ban: {jails: {sshd: {enabled: true, maxretry: 4, bantime: 1h}}}
- name: security updates
  when: facts.pkg_manager == 'apt'
  auto_updates: {enabled: true}
)");
    auto check = apply(*hosts, *inv, plan, {"--check", "--diff"});
    ASSERT_EQ(check.exit_code, 0) << check.describe() << check.out;
    EXPECT_TRUE(contains(check.out, "install fail2ban, python3-systemd")) << check.out;
    EXPECT_TRUE(contains(check.out, "+maxretry = 4")) << check.out;
    EXPECT_EQ(
        host_sh(*hosts, 0,
                "command -v fail2ban-client; ls /etc/apt/apt.conf.d/20auto-upgrades 2>/dev/null"),
        "");

    auto r = apply(*hosts, *inv, plan);
    ASSERT_EQ(r.exit_code, 0) << r.describe() << r.out;
    EXPECT_TRUE(contains(r.out, h + "  ok=0 changed=2 failed=0")) << r.out;
    EXPECT_EQ(host_sh(*hosts, 0,
                      "systemctl is-active fail2ban; fail2ban-client status sshd | grep -c "
                      "'Currently banned'"),
              "active\n1\n");
    EXPECT_EQ(host_sh(*hosts, 0, "fail2ban-client get sshd maxretry"), "4\n");
    EXPECT_EQ(host_sh(*hosts, 0,
                      "apt-config dump APT::Periodic::Unattended-Upgrade; dpkg-query -W "
                      "-f='${db:Status-Status}' unattended-upgrades"),
              "APT::Periodic::Unattended-Upgrade \"1\";\ninstalled");

    auto again = apply(*hosts, *inv, plan);
    EXPECT_TRUE(contains(again.out, h + "  ok=2 changed=0 failed=0")) << again.out;
}

}  // namespace
}  // namespace tunnel::test
