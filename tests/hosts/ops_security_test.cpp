// ops security modules on real test hosts: sshd drop-in (applied, re-applied,
// check mode), a config that breaks login rolled back with the host still
// reachable, ufw rules with the SSH port kept open, a step that would close
// the SSH port refused, and a host that dies while the others continue.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "ops_support.hpp"

namespace tunnel::test {
namespace {

using namespace ops_hosts;

class OpsHostSecurity : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        auto s = shared_hosts::start(2, "servers");
        ASSERT_TRUE(s) << s.error().message;
        shared_ = std::move(*s);
        hosts_ = &shared_->hosts;
        dir_ = &shared_->dir;
        inventory_ = shared_->inventory;
    }
    static void TearDownTestSuite() { shared_.reset(); }
    static inline std::unique_ptr<shared_hosts> shared_;
    static inline test_hosts* hosts_ = nullptr;
    static inline temp_dir* dir_ = nullptr;
    static inline std::string inventory_;
};

TEST_F(OpsHostSecurity, SshdHardeningCheckApplyReapply) {
    const auto h0 = (*hosts_)[0].name;
    auto plan = write_file(*dir_, "sshd.yaml",
                           fmt::format(R"(- name: harden sshd
  hosts: {}
  sshd:
    settings:
      PasswordAuthentication: false
      KbdInteractiveAuthentication: false
      PermitRootLogin: prohibit-password
      MaxAuthTries: 3
      X11Forwarding: false
      Ciphers: [chacha20-poly1305@openssh.com, aes256-gcm@openssh.com, aes128-gcm@openssh.com]
)",
                                       h0));
    auto check = apply(*hosts_, inventory_, plan, {"--check", "--diff"});
    ASSERT_EQ(check.exit_code, 0) << check.describe() << check.out;
    EXPECT_TRUE(contains(check.out, "+MaxAuthTries 3")) << check.out;
    EXPECT_EQ(host_sh(*hosts_, 0,
                      "ls /etc/ssh/sshd_config.d/00-tunnel.conf 2>/dev/null; sshd -T | grep -i "
                      "'^maxauthtries'"),
              "maxauthtries 6\n");

    auto r = apply(*hosts_, inventory_, plan);
    ASSERT_EQ(r.exit_code, 0) << r.describe() << r.out;
    EXPECT_TRUE(contains(r.out, h0 + "  ok=0 changed=1 failed=0")) << r.out;
    EXPECT_EQ(host_sh(*hosts_, 0,
                      "sshd -T | grep -iE "
                      "'^(maxauthtries|passwordauthentication|x11forwarding|ciphers) ' | sort"),
              "ciphers "
              "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh."
              "com\nmaxauthtries 3\n"
              "passwordauthentication no\nx11forwarding no\n");
    EXPECT_EQ(hosts_->ssh(0, "echo still-in").out, "still-in\n");

    auto again = apply(*hosts_, inventory_, plan);
    EXPECT_TRUE(contains(again.out, h0 + "  ok=1 changed=0 failed=0")) << again.out;
}

TEST_F(OpsHostSecurity, SshdChangeThatBreaksLoginIsRolledBack) {
    const auto h1 = (*hosts_)[1].name;
    auto before = host_sh(*hosts_, 1, "ls -A /etc/ssh/sshd_config.d; sshd -T | sort | sha256sum");
    // Valid for `sshd -t`, but nobody may log in any more.
    auto plan = write_file(*dir_, "lockout.yaml",
                           fmt::format(R"(- name: lock everyone out
  hosts: {}
  sshd: {{settings: {{AllowUsers: nobody-here}}}}
- name: never runs
  hosts: {}
  file: {{path: /root/after-lockout, content: "x\n"}}
)",
                                       h1, h1));
    auto r = apply(*hosts_, inventory_, plan);
    EXPECT_EQ(r.exit_code, 1) << r.describe() << r.out;
    EXPECT_TRUE(contains(r.out, h1 + ": failed step 1 (lock everyone out)")) << r.out;
    EXPECT_TRUE(contains(r.out, "a fresh SSH login failed after the change")) << r.out;
    EXPECT_TRUE(contains(r.out, "the previous config was restored and sshd reloaded")) << r.out;
    EXPECT_EQ(host_sh(*hosts_, 1, "ls -A /etc/ssh/sshd_config.d; sshd -T | sort | sha256sum"),
              before);
    EXPECT_EQ(hosts_->ssh(1, "echo reachable").out, "reachable\n");
    EXPECT_EQ(host_sh(*hosts_, 1, "ls /root/after-lockout 2>/dev/null"), "");

    // An invalid setting never reaches sshd: `sshd -t` refuses it first.
    auto invalid =
        write_file(*dir_, "invalid.yaml",
                   fmt::format("- hosts: {}\n  sshd: {{settings: {{MaxAuthTries: lots}}}}\n", h1));
    auto bad = apply(*hosts_, inventory_, invalid);
    EXPECT_EQ(bad.exit_code, 1) << bad.describe();
    EXPECT_TRUE(contains(bad.out, "sshd -t refused the new settings; previous config kept"))
        << bad.out;
    EXPECT_EQ(host_sh(*hosts_, 1, "ls -A /etc/ssh/sshd_config.d; sshd -T | sort | sha256sum"),
              before);
}

TEST_F(OpsHostSecurity, FirewallKeepsSshOpenAndRefusesToCloseIt) {
    const auto h0 = (*hosts_)[0].name;
    auto closing = write_file(*dir_, "fw-close.yaml",
                              fmt::format(R"(- name: close ssh
  hosts: {}
  firewall: {{rules: ['deny 22/tcp', '80/tcp'], default_incoming: deny}}
)",
                                          h0));
    auto refused = apply(*hosts_, inventory_, closing);
    EXPECT_EQ(refused.exit_code, 1) << refused.describe() << refused.out;
    EXPECT_TRUE(
        contains(refused.out, "would close the SSH port 22 this connection uses; nothing changed"))
        << refused.out;
    EXPECT_EQ(host_sh(*hosts_, 0, "ufw status | head -1"), "Status: inactive\n");

    auto plan = write_file(*dir_, "fw.yaml",
                           fmt::format(R"(- name: web firewall
  hosts: {}
  firewall:
    default_incoming: deny
    rules: ['80/tcp', {{port: 5432, from: 10.213.79.0/24}}, 'deny 23']
)",
                                       h0));
    auto check = apply(*hosts_, inventory_, plan, {"--check"});
    ASSERT_EQ(check.exit_code, 0) << check.describe() << check.out;
    EXPECT_TRUE(contains(check.out, "ufw allow 22/tcp")) << check.out;
    EXPECT_EQ(host_sh(*hosts_, 0, "ufw status | head -1"), "Status: inactive\n");

    auto r = apply(*hosts_, inventory_, plan);
    ASSERT_EQ(r.exit_code, 0) << r.describe() << r.out;
    auto status = host_sh(*hosts_, 0, "ufw status verbose");
    EXPECT_TRUE(contains(status, "Status: active")) << status;
    EXPECT_TRUE(contains(status, "Default: deny (incoming)")) << status;
    EXPECT_TRUE(contains(status, "22/tcp                     ALLOW IN    Anywhere")) << status;
    EXPECT_TRUE(contains(status, "5432/tcp                   ALLOW IN    10.213.79.0/24"))
        << status;
    // A brand-new connection still gets in.
    EXPECT_EQ(hosts_->ssh(0, "echo through-the-firewall").out, "through-the-firewall\n");

    auto again = apply(*hosts_, inventory_, plan);
    EXPECT_TRUE(contains(again.out, h0 + "  ok=1 changed=0 failed=0")) << again.out;
    host_sh(*hosts_, 0, "ufw --force reset >/dev/null");
}

TEST_F(OpsHostSecurity, DeadHostIsUnreachableWhileTheOtherCompletes) {
    auto hosts = test_hosts::start(2);
    ASSERT_TRUE(hosts) << hosts.error().message;
    auto d = temp_dir::create("ops-dead");
    ASSERT_TRUE(d);
    auto inv = hosts->write_inventory("pair");
    ASSERT_TRUE(inv);
    ASSERT_TRUE(hosts->stop(1, test_hosts::stop_mode::fast));
    auto plan = write_file(
        *d, "p.yaml",
        "- file: {path: /root/marker, content: \"m\\n\"}\n- directory: {path: /root/d}\n");
    auto r = apply(*hosts, *inv, plan);
    EXPECT_EQ(r.exit_code, 4) << r.describe() << r.out;
    EXPECT_TRUE(
        contains(r.out, (*hosts)[0].name + "  ok=0 changed=2 failed=0 skipped=0 unreachable=0"))
        << r.out;
    EXPECT_TRUE(
        contains(r.out, (*hosts)[1].name + "  ok=0 changed=0 failed=0 skipped=0 unreachable=1"))
        << r.out;
    EXPECT_EQ(host_sh(*hosts, 0, "cat /root/marker"), "m\n");
}

}  // namespace
}  // namespace tunnel::test
