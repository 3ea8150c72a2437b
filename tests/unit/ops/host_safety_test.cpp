// What keeps `tunnel apply` from being turned against the host it manages:
// sshd drop-in names that reach a root shell are validated, the firewall keeps
// sshd's own ports open (not the port this tool dialled through a forward),
// and facts read that port from $SSH_CONNECTION.
#include <gtest/gtest.h>

#include "ops/modules.hpp"
#include "ops/plan.hpp"

namespace tunnel::ops {
namespace {

TEST(OpsSshdDropIn, NamesThatAreNotPlainFileNamesAreRefusedAtPlanTime) {
    for (const char* bad :
         {"$(id>&2).conf", "`id`.conf", "a b.conf", "x;reboot.conf", "a'b.conf", "x\".conf",
          "../x.conf", ".hidden.conf", ".conf", "x.cfg", "x.conf.bak", "x$IFS.conf", "\\x.conf"})
        EXPECT_FALSE(is_sshd_dropin_name(bad)) << bad;
    for (const char* good : {"00-tunnel.conf", "10_site.v2-hardening.conf", "-x.conf", "a.conf"})
        EXPECT_TRUE(is_sshd_dropin_name(good)) << good;
    EXPECT_FALSE(is_sshd_dropin_name(std::string(252, 'a') + ".conf"));  // longer than NAME_MAX

    auto p = parse_plan("- sshd: {file: \"$(id>&2).conf\", settings: {MaxAuthTries: 3}}\n",
                        "site.yaml", ".");
    ASSERT_FALSE(p) << "a drop-in name with a command substitution was accepted";
    EXPECT_NE(p.error().message.find("site.yaml: step 1.sshd.file: '$(id>&2).conf' is not a "
                                     "drop-in file name"),
              std::string::npos)
        << p.error().message;
    EXPECT_NE(p.error().message.find("letters, digits"), std::string::npos) << p.error().message;
}

TEST(OpsSshdDropIn, AValidNameIsWrittenAndRolledBackUnderThatName) {
    auto p = parse_plan("- sshd: {file: 10-site_v2.conf, settings: {MaxAuthTries: 3}}\n",
                        "site.yaml", ".");
    ASSERT_TRUE(p) << p.error().message;
    facts f;
    auto c = p->steps.at(0).mod->check(f, probe_data("conf.absent\nsshd.include\n"));
    ASSERT_TRUE(c) << c.error().message;
    ASSERT_EQ(c->actions.size(), 1u);
    const auto& a = c->actions[0];
    EXPECT_NE(a.script.find("p=/etc/ssh/sshd_config.d/10-site_v2.conf\n"), std::string::npos)
        << a.script;
    EXPECT_NE(a.script.find("b=/etc/ssh/sshd_config.d/.10-site_v2.conf.tunnel-previous\n"),
              std::string::npos)
        << a.script;
    EXPECT_NE(a.rollback.find("b=/etc/ssh/sshd_config.d/.10-site_v2.conf.tunnel-previous\n"),
              std::string::npos)
        << a.rollback;
}

TEST(OpsFacts, SshPortIsTheOneSshdAcceptedTheConnectionOn) {
    const std::string base =
        "distro=debian\npkg_manager=apt\ninit_system=systemd\nfirewall=ufw\nuser=root\n";
    // Dialled 40022 on a forwarder; sshd itself took the connection on 22.
    auto f = parse_facts(base + "ssh_connection=10.213.79.1 51234 10.213.79.10 22\n", 40022);
    ASSERT_TRUE(f) << f.error().message;
    EXPECT_EQ(f->ssh_port, 22);
    EXPECT_EQ(f->dialled_port, 40022);
    EXPECT_EQ(f->get("ssh_port"), "22");
    for (const char* odd : {"", "10.0.0.1 5 10.0.0.2", "a b c d", "1 2 3 0", "1 2 3 65536",
                            "1 2 3 22 5", "1 2 3 2x"}) {
        auto g = parse_facts(base + "ssh_connection=" + odd + "\n", 2222);
        ASSERT_TRUE(g) << odd;
        EXPECT_EQ(g->ssh_port, 2222) << "'" << odd << "' should fall back to the dialled port";
    }
}

facts behind_forward() {
    facts f;
    f.distro = "debian";
    f.pkg_manager = "apt";
    f.init_system = "systemd";
    f.user = "root";
    f.ssh_port = 22;         // sshd's own
    f.dialled_port = 40022;  // the forwarder's
    return f;
}

const module& single_module(const core::result<plan>& p) {
    EXPECT_TRUE(p) << p.error().message;
    return *p->steps.at(0).mod;
}

TEST(OpsFirewall, KeepsSshdsOwnPortsOpenNotTheDialledOne) {
    auto f = behind_forward();
    f.firewall = "ufw";
    auto plan =
        parse_plan("- firewall: {default_incoming: deny, rules: ['80/tcp']}", "p.yaml", ".");
    const auto& m = single_module(plan);
    EXPECT_NE(m.probe(f).find("sshd -T"), std::string::npos);
    auto c = m.check(f, probe_data("ssh.listen 22\nssh.listen 2222\nufw.status inactive\n"
                                   "ufw.default allow (incoming)\n"));
    ASSERT_TRUE(c) << c.error().message;
    const std::vector<std::string> want{"ufw allow 22/tcp", "ufw allow 2222/tcp",
                                        "ufw allow 80/tcp", "ufw default deny incoming",
                                        "ufw enable"};
    EXPECT_EQ(c->changes, want);
    ASSERT_EQ(c->actions.size(), 1u);
    EXPECT_EQ(c->actions[0].script.find("40022"), std::string::npos) << c->actions[0].script;

    // Without sshd -T (no root) the port from $SSH_CONNECTION is still kept.
    auto alone = m.check(f, probe_data("ufw.status inactive\nufw.default allow (incoming)\n"));
    ASSERT_TRUE(alone);
    EXPECT_EQ(alone->changes.at(0), "ufw allow 22/tcp");

    // Every tool: nftables ruleset and iptables commands name 22 and 2222, never 40022.
    f.firewall = "nftables";
    auto n = m.check(f, probe_data("ssh.listen 2222\nnft.absent\n"));
    ASSERT_TRUE(n) << n.error().message;
    EXPECT_NE(n->diff.find("+    tcp dport 22 accept\n+    tcp dport 2222 accept\n"),
              std::string::npos)
        << n->diff;
    EXPECT_EQ(n->diff.find("40022"), std::string::npos) << n->diff;
    f.firewall = "iptables";
    EXPECT_NE(m.probe(f).find("for fw_p in 22 $fw_ports"), std::string::npos) << m.probe(f);
    auto i = m.check(f, probe_data("ssh.listen 2222\nipt.sshopen 22\nipt.have 0\n"
                                   "ipt.established\nipt.policy DROP\n"));
    ASSERT_TRUE(i) << i.error().message;
    const std::vector<std::string> only_2222{"iptables -A INPUT -p tcp --dport 2222 -j ACCEPT"};
    EXPECT_EQ(i->changes, only_2222);
}

TEST(OpsFirewall, ARuleClosingAPortSshdListensOnIsRefused) {
    auto f = behind_forward();
    f.firewall = "ufw";
    auto closing = parse_plan("- firewall: {rules: ['deny 22/tcp']}", "p.yaml", ".");
    auto c = single_module(closing).check(f, probe_data("ufw.status active\n"));
    ASSERT_FALSE(c) << "deny 22 accepted although sshd took this connection on 22";
    EXPECT_NE(c.error().message.find("would close the SSH port 22 this connection uses (sshd's "
                                     "own port; this tool dialled 40022"),
              std::string::npos)
        << c.error().message;
    // The dialled port is the forwarder's, not this host's: closing it is fine.
    auto other = parse_plan("- firewall: {rules: ['deny 40022/tcp']}", "p.yaml", ".");
    EXPECT_TRUE(single_module(other).check(f, probe_data("ufw.status active\n")));

    auto second = parse_plan("- firewall: {rules: ['deny 2222/tcp']}", "p.yaml", ".");
    auto d = single_module(second).check(f, probe_data("ssh.listen 22\nssh.listen 2222\n"
                                                       "ufw.status active\n"));
    ASSERT_FALSE(d);
    EXPECT_NE(d.error().message.find("would close port 2222, on which sshd listens"),
              std::string::npos)
        << d.error().message;
}

TEST(OpsAuthorizedKey, RefusesUnlessSshIsARealDirectoryOfTheUserAndTheFileIsRegular) {
    auto p = parse_plan("- authorized_key: {user: deploy, key: 'ssh-ed25519 AAAAC3Nza deploy'}",
                        "p.yaml", ".");
    const auto& m = single_module(p);
    const std::string who = "ak.home /home/deploy\nak.ids deploy deploy\n";
    struct refusal {
        std::string probe, message;
    };
    for (const auto& r : std::vector<refusal>{
             {"ak.dir.untrusted user deploy\nak.dir.stat 777 deploy deploy 10 symbolic link\n"
              "ak.refused /home/deploy/.ssh is a symbolic link in /home/deploy ...\n",
              "/home/deploy/.ssh is a symbolic link: refusing to write deploy's keys through it"},
             {"ak.dir.stat 700 root root 4096 directory\nak.absent\n",
              "/home/deploy/.ssh is owned by root, not deploy: refusing to write deploy's keys "
              "there; fix with chown deploy /home/deploy/.ssh"},
             {"ak.dir.stat 644 deploy deploy 0 regular empty file\nak.refused x\n",
              "/home/deploy/.ssh is a regular empty file, not a directory"},
             {"ak.dir.stat 700 deploy deploy 4096 directory\nak.untrusted user deploy\n"
              "ak.stat 777 deploy deploy 11 symbolic link\n",
              "/home/deploy/.ssh/authorized_keys is a symbolic link, not a regular file: refusing "
              "to read or replace it"},
             {"ak.dir.stat 700 deploy deploy 4096 directory\nak.untrusted user deploy\n"
              "ak.refused /home/deploy/.ssh/authorized_keys has 2 hard links ...\n",
              "/home/deploy/.ssh/authorized_keys has 2 hard links"},
         }) {
        auto c = m.check(facts{}, probe_data(who + r.probe));
        ASSERT_FALSE(c) << r.probe;
        EXPECT_NE(c.error().message.find(r.message), std::string::npos) << r.probe << "\n---\n"
                                                                        << c.error().message;
    }
    // A real directory of the user: the key is added, owned by the user, 0600.
    auto ok = m.check(facts{}, probe_data(who + "ak.dir.untrusted user deploy\n"
                                                "ak.dir.stat 700 deploy deploy 4096 directory\n"
                                                "ak.absent\n"));
    ASSERT_TRUE(ok) << ok.error().message;
    ASSERT_EQ(ok->actions.size(), 1u);
    EXPECT_NE(ok->actions[0].script.find("chown -- deploy:deploy ./new\nchmod -- 0600 ./new\n"),
              std::string::npos)
        << ok->actions[0].script;
}

TEST(OpsFile, AProbeRefusalFailsTheStepNamingThePath) {
    auto p = parse_plan("- file: {path: /home/u/.config/app.conf, content: x}", "p.yaml", ".");
    auto c = single_module(p).check(
        facts{}, probe_data("f.refused /home/u/.config is a symbolic link in /home/u, which user "
                            "u can change: refusing to follow it as root\n"));
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().message,
              "/home/u/.config/app.conf: /home/u/.config is a symbolic link in /home/u, which "
              "user u can change: refusing to follow it as root");
    // Attribute-only changes rewrite the file beside it (chmod by path would follow a link).
    auto attrs = parse_plan("- file: {path: /srv/a.conf, content: x, mode: '0600'}", "p.yaml", ".");
    auto a = single_module(attrs).check(
        facts{}, probe_data("f.stat 644 root root 1 regular file\nf.b64 eA==\n"));
    ASSERT_TRUE(a) << a.error().message;
    EXPECT_EQ(a->changes, std::vector<std::string>{"mode of /srv/a.conf: 644 -> 600"});
    ASSERT_EQ(a->actions.size(), 1u);
    EXPECT_EQ(a->actions[0].description, "set attributes of /srv/a.conf");
    EXPECT_NE(a->actions[0].script.find("mv -fT -- ./new \"../$n\""), std::string::npos);
    EXPECT_EQ(a->actions[0].input, "x");
}

}  // namespace
}  // namespace tunnel::ops
