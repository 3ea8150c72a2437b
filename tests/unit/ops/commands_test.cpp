// Command lines and rendered files of the modules: every package manager and
// firewall tool, unit files, sshd drop-ins, diffs.
#include <gtest/gtest.h>

#include "ops/diff.hpp"
#include "ops/modules.hpp"
#include "ops/plan.hpp"

namespace tunnel::ops {
namespace {

TEST(OpsPackages, CommandLinesForEveryManager) {
    std::vector<std::string> n{"nginx", "curl"};
    EXPECT_EQ(*package_install_command("apt", n),
              "DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o "
              "Dpkg::Options::=--force-confdef -o "
              "Dpkg::Options::=--force-confold -- nginx curl");
    EXPECT_EQ(*package_remove_command("apt", n),
              "DEBIAN_FRONTEND=noninteractive apt-get remove -y -q -- nginx curl");
    EXPECT_EQ(*package_upgrade_command("apt", n),
              "DEBIAN_FRONTEND=noninteractive apt-get install --only-upgrade -y -q -o "
              "Dpkg::Options::=--force-confdef -o "
              "Dpkg::Options::=--force-confold -- nginx curl");
    EXPECT_EQ(*package_refresh_command("apt"), "apt-get update -q");
    EXPECT_EQ(*package_install_command("dnf", n), "dnf install -y -- nginx curl");
    EXPECT_EQ(*package_remove_command("dnf", n), "dnf remove -y -- nginx curl");
    EXPECT_EQ(*package_upgrade_command("dnf", n), "dnf upgrade -y -- nginx curl");
    EXPECT_EQ(*package_refresh_command("dnf"), "dnf makecache -q");
    EXPECT_EQ(*package_install_command("yum", n), "yum install -y -- nginx curl");
    EXPECT_EQ(*package_upgrade_command("yum", n), "yum upgrade -y -- nginx curl");
    EXPECT_EQ(*package_install_command("pacman", n),
              "pacman -S --noconfirm --needed -- nginx curl");
    EXPECT_EQ(*package_remove_command("pacman", n), "pacman -R --noconfirm -- nginx curl");
    EXPECT_EQ(*package_upgrade_command("pacman", n), "pacman -S --noconfirm -- nginx curl");
    EXPECT_EQ(*package_refresh_command("pacman"), "pacman -Sy --noconfirm");
    EXPECT_EQ(*package_install_command("zypper", n),
              "zypper --non-interactive install -- nginx curl");
    EXPECT_EQ(*package_remove_command("zypper", n),
              "zypper --non-interactive remove -- nginx curl");
    EXPECT_EQ(*package_upgrade_command("zypper", n),
              "zypper --non-interactive update -- nginx curl");
    EXPECT_EQ(*package_refresh_command("zypper"), "zypper --non-interactive refresh");
    EXPECT_FALSE(package_install_command("apk", n));
    for (auto m : {"apt", "dnf", "yum", "pacman", "zypper"}) {
        auto q = package_query_command(m, n, true);
        ASSERT_TRUE(q) << m;
        EXPECT_NE(q->find("pkg.installed"), std::string::npos) << m;
        EXPECT_NE(q->find("pkg.upgradable"), std::string::npos) << m;
    }
    EXPECT_NE(package_query_command("apt", n, false)->find("dpkg-query -W"), std::string::npos);
    EXPECT_NE(package_query_command("dnf", n, false)->find("rpm -q"), std::string::npos);
    EXPECT_NE(package_query_command("pacman", n, false)->find("pacman -Q -- nginx curl"),
              std::string::npos);
}

TEST(OpsPackages, NamesAreQuoted) {
    EXPECT_EQ(*package_install_command("dnf", {"a b", "c;d"}), "dnf install -y -- 'a b' 'c;d'");
}

TEST(OpsFirewall, CommandLinesForEveryTool) {
    firewall_rule web{"443", "tcp", std::nullopt, "allow"};
    firewall_rule db{"5432", "tcp", std::string("10.0.0.0/8"), "allow"};
    firewall_rule telnet{"23", "tcp", std::nullopt, "deny"};
    firewall_rule range{"8000:8100", "udp", std::nullopt, "allow"};
    EXPECT_EQ(ufw_rule_command(web), "ufw allow 443/tcp");
    EXPECT_EQ(ufw_rule_command(db), "ufw allow from 10.0.0.0/8 to any port 5432 proto tcp");
    EXPECT_EQ(ufw_rule_command(telnet), "ufw deny 23/tcp");
    EXPECT_EQ(ufw_rule_command(range), "ufw allow 8000:8100/udp");
    EXPECT_EQ(ufw_default_command("deny"), "ufw default deny incoming");
    EXPECT_EQ(firewalld_rule_command(web), "firewall-cmd --permanent --add-port=443/tcp");
    EXPECT_EQ(firewalld_rule_command(range), "firewall-cmd --permanent --add-port=8000-8100/udp");
    EXPECT_EQ(firewalld_rule_command(db),
              "firewall-cmd --permanent --add-rich-rule='rule family=\"ipv4\" source "
              "address=\"10.0.0.0/8\" port "
              "port=\"5432\" protocol=\"tcp\" accept'");
    EXPECT_EQ(firewalld_rule_command(telnet),
              "firewall-cmd --permanent --add-rich-rule='rule family=\"ipv4\" port port=\"23\" "
              "protocol=\"tcp\" drop'");
    EXPECT_EQ(firewalld_default_command("allow"), "firewall-cmd --permanent --set-target=ACCEPT");
    EXPECT_EQ(firewalld_default_command("deny"), "firewall-cmd --permanent --set-target=default");
    EXPECT_EQ(iptables_rule_args(db),
              (std::vector<std::string>{"-p", "tcp", "-s", "10.0.0.0/8", "--dport", "5432", "-j",
                                        "ACCEPT"}));
    EXPECT_EQ(iptables_rule_args(telnet),
              (std::vector<std::string>{"-p", "tcp", "--dport", "23", "-j", "DROP"}));
    EXPECT_EQ(iptables_default_command("deny"), "iptables -P INPUT DROP");
    EXPECT_EQ(nftables_ruleset({web, db, range}, "deny"),
              "# Managed by tunnel (firewall step); local edits are overwritten.\n"
              "table inet tunnel\ndelete table inet tunnel\ntable inet tunnel {\n  chain input {\n"
              "    type filter hook input priority 0; policy drop;\n"
              "    ct state established,related accept\n    iif lo accept\n"
              "    tcp dport 443 accept\n    ip saddr 10.0.0.0/8 tcp dport 5432 accept\n    udp "
              "dport 8000-8100 accept\n"
              "  }\n}\n");
}

TEST(OpsFirewall, SshPortOpenFollowsFirstMatchAndPolicy) {
    firewall_rule deny_ssh{"22", "tcp", std::nullopt, "deny"};
    firewall_rule allow_ssh{"22", "tcp", std::nullopt, "allow"};
    firewall_rule from_lan{"22", "tcp", std::string("10.0.0.0/8"), "allow"};
    firewall_rule range{"20:30", "tcp", std::nullopt, "allow"};
    EXPECT_TRUE(ssh_port_open({}, "allow", 22));
    EXPECT_FALSE(ssh_port_open({}, "deny", 22));
    EXPECT_FALSE(ssh_port_open({from_lan}, "deny", 22));  // only from one network
    EXPECT_TRUE(ssh_port_open({allow_ssh}, "deny", 22));
    EXPECT_TRUE(ssh_port_open({range}, "deny", 22));
    EXPECT_FALSE(ssh_port_open({deny_ssh, allow_ssh}, "allow", 22));
    EXPECT_TRUE(ssh_port_open({deny_ssh}, "deny", 2222) == false);
}

facts host_facts(std::string firewall) {
    facts f;
    f.distro = "debian";
    f.pkg_manager = "apt";
    f.init_system = "systemd";
    f.firewall = std::move(firewall);
    f.user = "root";
    f.ssh_port = 2222;
    return f;
}

const module& only_module(const core::result<plan>& p) {
    EXPECT_TRUE(p) << p.error().message;
    return *p->steps.at(0).mod;
}

TEST(OpsFirewall, ClosingTheSshPortIsRefusedAndDenyByDefaultKeepsItOpen) {
    auto f = host_facts("ufw");
    auto closing = parse_plan("- firewall: {rules: ['deny 2222/tcp']}", "p.yaml", ".");
    auto c = only_module(closing).check(
        f, probe_data("ufw.status inactive\nufw.default deny (incoming)\n"));
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message.find("would close the SSH port 2222"), std::string::npos)
        << c.error().message;

    auto allowed =
        parse_plan("- firewall: {rules: ['deny 2222/tcp'], keep_ssh_open: false}", "p.yaml", ".");
    EXPECT_TRUE(only_module(allowed).check(f, probe_data("ufw.status active\n")));

    auto deny_all =
        parse_plan("- firewall: {rules: ['80/tcp'], default_incoming: deny}", "p.yaml", ".");
    auto d = only_module(deny_all).check(
        f, probe_data("ufw.status inactive\nufw.default allow (incoming)\n"));
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_EQ(d->changes, (std::vector<std::string>{"ufw allow 2222/tcp", "ufw allow 80/tcp",
                                                    "ufw default deny incoming", "ufw enable"}));
    // Already in place: nothing to do.
    auto same =
        only_module(deny_all).check(f, probe_data("ufw.status active\nufw.default deny (incoming), "
                                                  "allow (outgoing)\nufw.rule ufw allow 2222/tcp\n"
                                                  "ufw.rule ufw allow 80/tcp\n"));
    ASSERT_TRUE(same);
    EXPECT_FALSE(same->changed());
}

TEST(OpsService, RendersUnitFiles) {
    unit_fields u;
    u.unit = {{"Description", "App"}, {"After", "network.target"}};
    u.service = {{"ExecStart", "/usr/bin/app --port 8080"},
                 {"User", "app"},
                 {"Environment", "\"MODE=prod\""}};
    u.install = {{"WantedBy", "multi-user.target"}};
    EXPECT_EQ(
        render_unit(u),
        "# Managed by tunnel (service step); local edits are overwritten.\n"
        "[Unit]\nDescription=App\nAfter=network.target\n\n"
        "[Service]\nExecStart=/usr/bin/app --port 8080\nUser=app\nEnvironment=\"MODE=prod\"\n\n"
        "[Install]\nWantedBy=multi-user.target\n");
}

TEST(OpsService, UnitFromPlanFields) {
    auto p = parse_plan(R"(- service:
    name: app
    state: started
    enabled: true
    unit:
      Description: App
      After: [network.target, redis.service]
      ExecStart: /usr/bin/app
      Environment: {MODE: prod, PORT: "8080"}
      Restart: on-failure
)",
                        "p.yaml", ".");
    const auto& m = only_module(p);
    auto c =
        m.check(host_facts("none"),
                probe_data("svc.LoadState not-found\nsvc.ActiveState inactive\nunit.absent\n"));
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_NE(c->diff.find("+After=network.target redis.service\n"), std::string::npos) << c->diff;
    EXPECT_NE(c->diff.find("+Environment=\"MODE=prod\"\n+Environment=\"PORT=8080\"\n"),
              std::string::npos)
        << c->diff;
    EXPECT_NE(c->diff.find("+WantedBy=multi-user.target\n"), std::string::npos) << c->diff;
    EXPECT_EQ(c->changes, (std::vector<std::string>{"create /etc/systemd/system/app.service",
                                                    "systemctl daemon-reload", "enable app.service",
                                                    "start app.service"}));
}

TEST(OpsSshd, RendersSettings) {
    auto p = parse_plan(R"(- sshd:
    settings:
      PasswordAuthentication: false
      PermitRootLogin: prohibit-password
      MaxAuthTries: 3
      Ciphers: [chacha20-poly1305@openssh.com, aes256-gcm@openssh.com]
      AllowUsers: [root, deploy]
)",
                        "p.yaml", ".");
    auto c = only_module(p).check(host_facts("none"), probe_data("conf.absent\nsshd.include\n"));
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_NE(
        c->diff.find(
            "+PasswordAuthentication no\n+PermitRootLogin prohibit-password\n+MaxAuthTries 3\n"
            "+Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com\n+AllowUsers root "
            "deploy\n"),
        std::string::npos)
        << c->diff;
    ASSERT_EQ(c->actions.size(), 1u);
    EXPECT_TRUE(c->actions[0].verify_fresh_login);
    EXPECT_NE(c->actions[0].script.find("sshd -t"), std::string::npos);
    // Without the Include line a drop-in would do nothing: refused.
    EXPECT_FALSE(only_module(p).check(host_facts("none"), probe_data("conf.absent\n")));
}

TEST(OpsAuthorizedKey, AddsReplacesOptionsAndExclusive) {
    const std::string a = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAaaa alice";
    const std::string b = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBbbb bob";
    auto b64 = [](std::string s) {
        static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        std::string out;
        unsigned val = 0;
        int bits = -6;
        for (unsigned char c : s) {
            val = (val << 8) + c;
            bits += 8;
            while (bits >= 0) {
                out.push_back(t[(val >> bits) & 0x3F]);
                bits -= 6;
            }
        }
        if (bits > -6) out.push_back(t[((val << 8) >> (bits + 8)) & 0x3F]);
        while (out.size() % 4) out.push_back('=');
        return out;
    };
    auto probe = [&](const std::string& content) {
        return probe_data(
            "ak.home /home/deploy\nak.ids deploy deploy\nak.dir.stat 700 deploy deploy 4096 "
            "directory\n"
            "ak.stat 600 deploy deploy 10 regular file\nak.b64 " +
            b64(content) + "\n");
    };
    auto add = parse_plan(
        "- authorized_key: {user: deploy, key: '" + a + "', options: 'from=\"10.0.0.0/8\"'}", "p",
        ".");
    auto c = only_module(add).check(host_facts("none"), probe(b + "\n"));
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_NE(c->diff.find(" " + b + "\n+from=\"10.0.0.0/8\" " + a + "\n"), std::string::npos)
        << c->diff;
    auto same =
        only_module(add).check(host_facts("none"), probe(b + "\nfrom=\"10.0.0.0/8\" " + a + "\n"));
    ASSERT_TRUE(same);
    EXPECT_FALSE(same->changed());

    auto exclusive =
        parse_plan("- authorized_key: {user: deploy, key: '" + a + "', exclusive: true}", "p", ".");
    auto e =
        only_module(exclusive).check(host_facts("none"), probe("# keys\n" + b + "\n" + a + "\n"));
    ASSERT_TRUE(e);
    EXPECT_NE(e->diff.find("-" + b + "\n"), std::string::npos) << e->diff;

    auto absent =
        parse_plan("- authorized_key: {user: deploy, key: '" + b + "', state: absent}", "p", ".");
    auto r = only_module(absent).check(host_facts("none"), probe(a + "\n" + b + "\n"));
    ASSERT_TRUE(r);
    EXPECT_NE(r->diff.find("-" + b), std::string::npos) << r->diff;

    auto no_user = only_module(add).check(host_facts("none"), probe_data(""));
    ASSERT_FALSE(no_user);
    EXPECT_NE(no_user.error().message.find("user deploy does not exist"), std::string::npos);
}

TEST(OpsDiff, UnifiedLikeDiffU) {
    EXPECT_EQ(unified_diff("a\nb\nc\n", "a\nb\nc\n", "x", "y"), "");
    EXPECT_EQ(unified_diff("a\nb\nc\n", "a\nB\nc\n", "old", "new"),
              "--- old\n+++ new\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n");
    EXPECT_EQ(unified_diff("", "x\n", "/dev/null", "f"),
              "--- /dev/null\n+++ f\n@@ -0,0 +1,1 @@\n+x\n");
    std::string big_old, big_new;
    for (int i = 0; i < 20; ++i) {
        big_old += std::to_string(i) + "\n";
        big_new += (i == 2 || i == 17 ? "changed" : std::to_string(i)) + "\n";
    }
    auto d = unified_diff(big_old, big_new, "a", "b");
    EXPECT_NE(d.find("@@ -1,6 +1,6 @@\n 0\n 1\n-2\n+changed\n 3\n 4\n 5\n"), std::string::npos)
        << d;
    EXPECT_NE(d.find("@@ -15,6 +15,6 @@\n 14\n 15\n 16\n-17\n+changed\n 18\n 19\n"),
              std::string::npos)
        << d;
    EXPECT_NE(unified_diff("a", "b", "x", "y").find("\\ No newline at end of new file"),
              std::string::npos);
}

TEST(OpsProbe, Base64AndPathState) {
    EXPECT_EQ(base64_decode("aGVsbG8gd29ybGQ="), "hello world");
    EXPECT_EQ(base64_decode(""), "");
    probe_data p("f.stat 640 root adm 3 regular file\nf.b64 YWJj\nother.absent\n");
    auto s = read_path(p, "f");
    EXPECT_TRUE(s.exists);
    EXPECT_EQ(s.mode, "640");
    EXPECT_EQ(s.owner, "root");
    EXPECT_EQ(s.group, "adm");
    EXPECT_EQ(s.type, "regular file");
    EXPECT_EQ(s.content, "abc");
    EXPECT_FALSE(read_path(p, "other").exists);
}

}  // namespace
}  // namespace tunnel::ops
