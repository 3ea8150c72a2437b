// What keeps `tunnel apply` from being turned against the host it manages:
// sshd drop-in names that reach a root shell are validated, authorized_key
// refuses a ~/.ssh that is not the user's real directory, and a probe's
// refusal fails the step.
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

const module& only_module(const core::result<plan>& p) {
    EXPECT_TRUE(p) << p.error().message;
    return *p->steps.at(0).mod;
}

TEST(OpsAuthorizedKey, RefusesUnlessSshIsARealDirectoryOfTheUserAndTheFileIsRegular) {
    auto p = parse_plan("- authorized_key: {user: deploy, key: 'ssh-ed25519 AAAAC3Nza deploy'}",
                        "p.yaml", ".");
    const auto& m = only_module(p);
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
    auto c = only_module(p).check(
        facts{}, probe_data("f.refused /home/u/.config is a symbolic link in /home/u, which user "
                            "u can change: refusing to follow it as root\n"));
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().message,
              "/home/u/.config/app.conf: /home/u/.config is a symbolic link in /home/u, which "
              "user u can change: refusing to follow it as root");
    // Attribute-only changes rewrite the file beside it (chmod by path would follow a link).
    auto attrs = parse_plan("- file: {path: /srv/a.conf, content: x, mode: '0600'}", "p.yaml", ".");
    auto a = only_module(attrs).check(
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
