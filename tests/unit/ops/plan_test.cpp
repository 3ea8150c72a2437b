#include <gtest/gtest.h>

#include "ops/condition.hpp"
#include "ops/facts.hpp"
#include "ops/plan.hpp"

namespace tunnel::ops {
namespace {

core::result<plan> parse(std::string_view text) {
    return parse_plan(text, "site.yaml", ".");
}

TEST(OpsPlan, ParsesStepsWithNameHostsSudoAndWhen) {
    auto p = parse(R"(- name: deploy user
  hosts: web:&prod
  sudo: true
  when: facts.pkg_manager in ['apt', 'dnf']
  user: {name: deploy, shell: /bin/bash, groups: [sudo]}
- directory: {path: /srv/app, mode: "0755"}
)");
    ASSERT_TRUE(p) << p.error().message;
    ASSERT_EQ(p->steps.size(), 2u);
    EXPECT_EQ(p->steps[0].label(), "step 1 (deploy user)");
    EXPECT_EQ(p->steps[0].hosts, "web:&prod");
    EXPECT_TRUE(p->steps[0].sudo);
    EXPECT_EQ(p->steps[0].mod->kind(), "user");
    ASSERT_TRUE(p->steps[0].when);
    EXPECT_EQ(p->steps[1].label(), "step 2 (directory)");
    EXPECT_EQ(p->steps[1].hosts, "all");
    EXPECT_FALSE(p->steps[1].sudo);
}

TEST(OpsPlan, EveryProblemNamesFileStepAndKey) {
    auto p = parse(R"(- name: typo
  file: {path: /etc/x, contnet: y}
- name: bad type
  user: {name: deploy, groups: {a: b}}
- name: bad mode
  directory: {path: /srv, mode: "999"}
- frobnicate: {}
- name: no module
  sudo: true
- name: bad when
  when: facts.nope == 'x'
  directory: {path: /srv}
- name: relative
  directory: {path: srv}
- sudo: maybe
  directory: {path: /srv}
- name: two
  file: {path: /a, content: b}
  directory: {path: /srv}
)");
    ASSERT_FALSE(p);
    const auto& m = p.error().message;
    for (const char* want :
         {"site.yaml: step 1 (typo).file.contnet: unknown key",
          "site.yaml: step 2 (bad type).user.groups: must be a list",
          "step 3 (bad mode).directory.mode: '999' is not an octal mode",
          "step 4.frobnicate: unknown module or key", "step 5 (no module): has no module",
          "step 6 (bad when).when: unknown fact 'nope'",
          "step 7 (relative).directory.path: 'srv' must be an absolute path",
          "step 8.sudo: must be true or false",
          "step 9 (two).directory: a step has exactly one module"})
        EXPECT_NE(m.find(want), std::string::npos) << want << "\n---\n" << m;
}

TEST(OpsPlan, RejectsNonListPlansAndBadYaml) {
    EXPECT_NE(parse("a: b\n").error().message.find("a plan is a YAML list of steps"),
              std::string::npos);
    EXPECT_NE(parse("").error().message.find("empty"), std::string::npos);
    EXPECT_NE(parse("- [\n").error().message.find("site.yaml:"), std::string::npos);
}

TEST(OpsPlan, ModuleArgumentsAreChecked) {
    struct bad {
        const char* yaml;
        const char* message;
    };
    for (const auto& b : std::initializer_list<bad>{
             {"- sudoers: {name: my.rules, rules: ['x ALL=(ALL) ALL']}",
              "sudo ignores names with '.'"},
             {"- packages: {names: [nginx], state: newest}",
              "'newest' is not one of: present, absent, latest"},
             {"- packages: {state: present}", "packages.names: is required"},
             {"- service: {name: web, state: running}",
              "'running' is not one of: started, stopped"},
             {"- service: {name: web, unit: {Description: x}}", "unit.ExecStart: is required"},
             {"- service: {name: web, unit: {ExecStart: /bin/true, Bogus: 1}}",
              "unit.Bogus: unknown key"},
             {"- sshd: {settings: {}}", "sshd.settings: must be a non-empty mapping"},
             {"- sshd: {settings: {Match: all}}", "Match and Include blocks are not supported"},
             {"- firewall: {rules: ['99999/tcp']}", "'99999' is not a port"},
             {"- firewall: {rules: [{port: 22, proto: icmp}]}",
              "protocol 'icmp' must be tcp or udp"},
             {"- firewall: {default_incoming: reject}", "'reject' is not one of: allow, deny"},
             {"- authorized_key: {user: deploy, key: 'not a key'}", "is not a public key line"},
             {"- file: {path: /etc/x}", "needs content or src"},
             {"- file: {path: /etc/x, src: does-not-exist.txt}",
              "cannot read ./does-not-exist.txt"},
             {"- file: {path: /etc/x, content: a, validate: 'visudo -cf'}", "must contain %s"},
             {"- user: {name: '-rf'}", "is not a valid name"},
             {"- fail2ban: {jails: [sshd]}", "must be a mapping of jail name"},
             {"- auto_updates: {enabled: sometimes}",
              "auto_updates.enabled: must be true or false"},
         }) {
        auto p = parse(b.yaml);
        ASSERT_FALSE(p) << b.yaml;
        EXPECT_NE(p.error().message.find(b.message), std::string::npos) << b.yaml << "\n---\n"
                                                                        << p.error().message;
    }
}

facts debian() {
    auto f = parse_facts(
        "distro=debian\ndistro_like=\nversion=12\npkg_manager=apt\ninit_system=systemd\nfirewall="
        "ufw\n"
        "hostname=h1\narch=x86_64\nuser=root\n",
        2222);
    EXPECT_TRUE(f);
    return *f;
}

TEST(OpsFacts, ParsesTheScriptOutput) {
    auto f = debian();
    EXPECT_EQ(f.distro, "debian");
    EXPECT_EQ(f.version, "12");
    EXPECT_EQ(f.pkg_manager, "apt");
    EXPECT_EQ(f.firewall, "ufw");
    EXPECT_EQ(f.get("ssh_port"), "2222");
    EXPECT_FALSE(f.get("nope"));
    EXPECT_FALSE(parse_facts("garbage\n", 22));
}

TEST(OpsCondition, Evaluates) {
    auto f = debian();
    struct c {
        const char* text;
        bool value;
    };
    for (const auto& t : std::initializer_list<c>{
             {"facts.distro == 'debian'", true},
             {"facts.distro != \"debian\"", false},
             {"facts.pkg_manager in ['apt', 'dnf']", true},
             {"facts.pkg_manager not in ['apt', 'dnf']", false},
             {"facts.version == 12", true},
             {"facts.distro == 'ubuntu' or facts.version == '12'", true},
             {"facts.distro == 'ubuntu' or facts.version == '12' and facts.arch == 'arm'", false},
             {"(facts.distro == 'ubuntu' or facts.version == '12') and not facts.arch == 'arm'",
              true},
             {"not (facts.firewall in [])", true},
             {"true and not false", true},
         }) {
        auto cond = condition::parse(t.text);
        ASSERT_TRUE(cond) << t.text << ": " << cond.error().message;
        EXPECT_EQ(cond->evaluate(f), t.value) << t.text;
    }
}

TEST(OpsCondition, ParseErrorsSayWhere) {
    for (const auto& [text, msg] : std::initializer_list<std::pair<const char*, const char*>>{
             {"facts.distro = 'x'", "unexpected '='"},
             {"facts.distro == 'x", "unterminated string"},
             {"facts.os == 'x'", "unknown fact 'os'"},
             {"facts.distro in 'x'", "expected '['"},
             {"facts.distro == 'x' and", "expected facts.NAME"},
             {"(facts.distro == 'x'", "expected ')'"},
             {"facts.distro == 'x' facts.arch", "expected end of condition at column 21"},
         }) {
        auto c = condition::parse(text);
        ASSERT_FALSE(c) << text;
        EXPECT_NE(c.error().message.find(msg), std::string::npos)
            << text << ": " << c.error().message;
    }
}

}  // namespace
}  // namespace tunnel::ops
