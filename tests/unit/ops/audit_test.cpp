#include <gtest/gtest.h>

#include "ops/audit.hpp"

namespace tunnel::ops {
namespace {

std::string verdict_of(const audit_report& r, std::string_view id) {
    for (const auto& c : r.checks)
        if (c.id == id) return std::string(to_string(c.result));
    return "missing";
}

TEST(OpsAudit, VerdictsFromHostOutput) {
    auto weak = evaluate_audit(
        "audit.uid 0\nsshd passwordauthentication yes\nsshd permitrootlogin yes\nsshd maxauthtries "
        "6\n"
        "sshd ciphers aes128-cbc,aes128-ctr\nsshd macs hmac-sha2-256\nsshd kexalgorithms "
        "curve25519-sha256\n"
        "listen 0.0.0.0:22\nlisten 0.0.0.0:5432\nlisten 127.0.0.1:6379\nfw.ufw inactive\n"
        "sudo.group sudo alice,bob\nsudo.rule bob ALL=(ALL) NOPASSWD: ALL\npw.user alice\n"
        "updates.security 3\nf2b.missing\n",
        22);
    ASSERT_TRUE(weak) << weak.error().message;
    EXPECT_EQ(verdict_of(*weak, "sshd.password_authentication"), "fail");
    EXPECT_EQ(verdict_of(*weak, "sshd.permit_root_login"), "fail");
    EXPECT_EQ(verdict_of(*weak, "sshd.max_auth_tries"), "warn");
    EXPECT_EQ(verdict_of(*weak, "sshd.algorithms"), "warn");
    EXPECT_EQ(verdict_of(*weak, "net.listening"), "warn");
    EXPECT_EQ(verdict_of(*weak, "firewall"), "fail");
    EXPECT_EQ(verdict_of(*weak, "sudo.users"), "warn");
    EXPECT_EQ(verdict_of(*weak, "accounts.passwords"), "fail");
    EXPECT_EQ(verdict_of(*weak, "updates.security"), "fail");
    EXPECT_EQ(verdict_of(*weak, "fail2ban"), "warn");

    auto strong = evaluate_audit(
        "audit.uid 0\nsshd passwordauthentication no\nsshd permitrootlogin prohibit-password\n"
        "sshd maxauthtries 3\nsshd ciphers chacha20-poly1305@openssh.com\nlisten 0.0.0.0:2222\n"
        "listen [::1]:25\nfw.ufw active\nupdates.security 0\nf2b.active active\nf2b.jails sshd\n",
        2222);
    ASSERT_TRUE(strong);
    EXPECT_EQ(strong->count(verdict::fail), 0u) << format_audit(*strong, "h");
    EXPECT_EQ(strong->count(verdict::warn), 0u) << format_audit(*strong, "h");
    EXPECT_EQ(to_json(*strong)["summary"]["fail"], 0);
    EXPECT_FALSE(evaluate_audit("nonsense", 22));
}

TEST(OpsAudit, ListeningPortsCountSshdsOwnPortsNotTheDialledOne) {
    // Dialled through a port forward (2200 -> 22): sshd's port 22 is SSH, and
    // the dialled 2200 is not listened on at all.
    const std::string base =
        "audit.uid 0\nsshd passwordauthentication no\nsshd port 22\nlisten 0.0.0.0:22\n";
    auto by_sshd = evaluate_audit(base, 2200);
    ASSERT_TRUE(by_sshd) << by_sshd.error().message;
    EXPECT_EQ(verdict_of(*by_sshd, "net.listening"), "pass") << format_audit(*by_sshd, "h");
    // Without root (no sshd -T) the server's side of the connection says it.
    auto by_connection =
        evaluate_audit("audit.uid 1000\naudit.ssh_port 22\nlisten 0.0.0.0:22\n", 2200);
    ASSERT_TRUE(by_connection);
    EXPECT_EQ(verdict_of(*by_connection, "net.listening"), "pass");
    // A second sshd port is SSH too; anything else still warns.
    auto two =
        evaluate_audit(base + "sshd port 2222\nlisten 0.0.0.0:2222\nlisten 0.0.0.0:80\n", 2200);
    ASSERT_TRUE(two);
    EXPECT_EQ(verdict_of(*two, "net.listening"), "warn");
    bool names_only_80 = false;
    for (const auto& c : two->checks)
        if (c.id == "net.listening")
            names_only_80 =
                c.detail.find("outside: 80 (besides SSH 22, 2222)") != std::string::npos;
    EXPECT_TRUE(names_only_80) << format_audit(*two, "h");
}

TEST(OpsAudit, JournalCommand) {
    EXPECT_EQ(*journal_command("nginx", 100, false), "journalctl --no-pager -u nginx -n 100");
    EXPECT_EQ(*journal_command("app@1.service", 5, true),
              "journalctl --no-pager -u app@1.service -n 5 -f");
    EXPECT_FALSE(journal_command("-f", 5, false));
    EXPECT_FALSE(journal_command("a;b", 5, false));
    EXPECT_FALSE(journal_command("", 5, false));
}

}  // namespace
}  // namespace tunnel::ops
