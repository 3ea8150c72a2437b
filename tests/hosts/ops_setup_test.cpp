// ops setup modules on real test hosts: user, authorized_key, directory, file,
// sudoers, service (unit from fields), packages (apt): check mode changes
// nothing, apply, re-apply reports 0 changed, --diff, and an invalid sudoers
// rule is refused with nothing changed.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ops_support.hpp"

namespace tunnel::test {
namespace {

using namespace ops_hosts;

class OpsHostSetup : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        auto s = shared_hosts::start(2, "web");
        ASSERT_TRUE(s) << s.error().message;
        shared_ = std::move(*s);
        hosts_ = &shared_->hosts;
        dir_ = &shared_->dir;
        inventory_ = shared_->inventory;
        auto kg = run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "deploy@test", "-f",
                       dir_->file("deploy")});
        ASSERT_TRUE(kg.ok()) << kg.describe();
    }
    static void TearDownTestSuite() { shared_.reset(); }
    static inline std::unique_ptr<shared_hosts> shared_;
    static inline test_hosts* hosts_ = nullptr;
    static inline temp_dir* dir_ = nullptr;
    static inline std::string inventory_;
};

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST_F(OpsHostSetup, SetupModulesCheckApplyReapplyAndDiff) {
    auto pub = slurp(dir_->file("deploy.pub"));
    while (!pub.empty() && pub.back() == '\n') pub.pop_back();
    auto plan = write_file(*dir_, "setup.yaml",
                           fmt::format(R"(- name: deploy user
  user: {{name: deploy, shell: /bin/bash, groups: [sudo, adm]}}
- name: deploy key
  authorized_key: {{user: deploy, key: "{}", options: 'from="10.213.79.0/24"'}}
- name: app dir
  directory: {{path: /srv/app, owner: deploy, group: deploy, mode: "0750"}}
- name: app config
  file: {{path: /srv/app/app.conf, content: "port = 8080\n", owner: deploy, mode: "0640", backup: true}}
- name: deploy may restart the app
  sudoers: {{name: deploy-app, rules: ["deploy ALL=(root) NOPASSWD: /usr/bin/systemctl restart app.service"]}}
- name: app service
  service:
    name: app
    state: started
    enabled: true
    wait_for: active
    timeout: 20s
    unit: {{Description: test app, ExecStart: /bin/sleep infinity, User: deploy, WorkingDirectory: /srv/app,
            Environment: {{MODE: prod}}, Restart: on-failure, After: network.target}}
- name: debian only
  when: facts.distro != 'debian'
  file: {{path: /srv/never, content: x}}
)",
                                       pub));
    // Check mode: everything would change, nothing does.
    auto check = apply(*hosts_, inventory_, plan, {"--check", "--diff"});
    ASSERT_EQ(check.exit_code, 0) << check.describe() << check.out;
    const auto h0 = (*hosts_)[0].name, h1 = (*hosts_)[1].name;
    EXPECT_TRUE(contains(check.out, h0 + "  ok=0 changed=6 failed=0 skipped=1 unreachable=0"))
        << check.out;
    EXPECT_TRUE(contains(check.out, "+port = 8080")) << check.out;
    EXPECT_TRUE(contains(check.out, "+ExecStart=/bin/sleep infinity")) << check.out;
    for (std::size_t i = 0; i < 2; ++i) {
        EXPECT_EQ(host_sh(*hosts_, i,
                          "getent passwd deploy; ls -d /srv/app /etc/sudoers.d/deploy-app "
                          "/etc/systemd/system/app.service 2>/dev/null"),
                  "");
    }

    auto first = apply(*hosts_, inventory_, plan, {"--json"});
    ASSERT_EQ(first.exit_code, 0) << first.describe() << first.out;
    auto j = nlohmann::json::parse(first.out);
    for (const auto& h : {h0, h1}) {
        EXPECT_EQ(j["recap"][h]["changed"], 6) << first.out;
        EXPECT_EQ(j["recap"][h]["skipped"], 1);
        EXPECT_EQ(j["recap"][h]["failed"], 0);
    }
    for (std::size_t i = 0; i < 2; ++i) {
        EXPECT_EQ(host_sh(*hosts_, i, "id -nG deploy | tr ' ' '\\n' | sort | tr '\\n' ' '"),
                  "adm deploy sudo ");
        EXPECT_EQ(host_sh(*hosts_, i, "getent passwd deploy | cut -d: -f7"), "/bin/bash\n");
        EXPECT_EQ(host_sh(*hosts_, i, "cat ~deploy/.ssh/authorized_keys"),
                  "from=\"10.213.79.0/24\" " + pub + "\n");
        EXPECT_EQ(host_sh(*hosts_, i,
                          "stat -c '%a %U %G' ~deploy/.ssh ~deploy/.ssh/authorized_keys /srv/app "
                          "/srv/app/app.conf"),
                  "700 deploy deploy\n600 deploy deploy\n750 deploy deploy\n640 deploy root\n");
        EXPECT_EQ(host_sh(*hosts_, i, "cat /srv/app/app.conf"), "port = 8080\n");
        EXPECT_EQ(host_sh(*hosts_, i,
                          "stat -c '%a %U' /etc/sudoers.d/deploy-app && visudo -cf "
                          "/etc/sudoers.d/deploy-app >/dev/null && echo valid"),
                  "440 root\nvalid\n");
        EXPECT_EQ(
            host_sh(*hosts_, i,
                    "systemctl is-active app; systemctl is-enabled app; ps -o user= -C sleep"),
            "active\nenabled\ndeploy\n");
    }
    // The key, the sudoers rule and the service work together: deploy logs in and restarts the app.
    auto login = run({"ssh", "-F", "/dev/null", "-i", dir_->file("deploy"), "-o",
                      "UserKnownHostsFile=" + (*hosts_)[0].known_hosts_path, "-o", "BatchMode=yes",
                      "deploy@" + (*hosts_)[0].ip,
                      "sudo -n /usr/bin/systemctl restart app.service && echo restarted"});
    EXPECT_EQ(login.out, "restarted\n") << login.describe();

    auto again = apply(*hosts_, inventory_, plan);
    ASSERT_EQ(again.exit_code, 0) << again.describe() << again.out;
    EXPECT_TRUE(contains(again.out, h0 + "  ok=6 changed=0 failed=0 skipped=1 unreachable=0"))
        << again.out;
    EXPECT_TRUE(contains(again.out, h1 + "  ok=6 changed=0 failed=0 skipped=1 unreachable=0"))
        << again.out;

    // Drift on one host: --diff shows it, the old version is kept as a backup.
    host_sh(*hosts_, 1, "echo 'port = 9999' > /srv/app/app.conf");
    auto drift = apply(*hosts_, inventory_, plan, {"--diff"});
    ASSERT_EQ(drift.exit_code, 0) << drift.describe();
    EXPECT_TRUE(contains(drift.out, "-port = 9999\n+port = 8080\n")) << drift.out;
    EXPECT_TRUE(contains(drift.out, h0 + "  ok=6 changed=0")) << drift.out;
    EXPECT_TRUE(contains(drift.out, h1 + "  ok=5 changed=1")) << drift.out;
    EXPECT_EQ(host_sh(*hosts_, 1, "cat /srv/app/app.conf; cat /srv/app/app.conf.*~"),
              "port = 8080\nport = 9999\n");
}

TEST_F(OpsHostSetup, InvalidSudoersRuleIsRefusedAndNothingChanges) {
    auto before = host_sh(*hosts_, 0, "ls -A /etc/sudoers.d; sha256sum /etc/sudoers");
    auto plan = write_file(*dir_, "bad-sudoers.yaml", R"(- name: broken rule
  sudoers: {name: broken, rules: ["deploy ALL=(ALL NOPASSWD: ALL"]}
- name: after it
  file: {path: /root/after-sudoers, content: "x\n"}
)");
    const auto h0 = (*hosts_)[0].name, h1 = (*hosts_)[1].name;
    auto r = apply(*hosts_, inventory_, plan, {"--limit", h0});
    EXPECT_EQ(r.exit_code, 1) << r.describe() << r.out;
    EXPECT_TRUE(contains(r.out, h0 + ": failed step 1 (broken rule)")) << r.out;
    EXPECT_TRUE(contains(r.out, "validation failed (visudo -cf %s), nothing changed")) << r.out;
    EXPECT_TRUE(contains(r.out, h0 + "  ok=0 changed=0 failed=1 skipped=0 unreachable=0")) << r.out;
    EXPECT_FALSE(contains(r.out, h1)) << r.out;  // --limit
    EXPECT_EQ(host_sh(*hosts_, 0, "ls -A /etc/sudoers.d; sha256sum /etc/sudoers"), before);
    EXPECT_EQ(host_sh(*hosts_, 0, "ls /root/after-sudoers 2>&1 >/dev/null | wc -l"),
              "1\n");  // later steps did not run
    EXPECT_EQ(hosts_->ssh(0, "sudo -n true && echo sudo-ok").out, "sudo-ok\n");
}

TEST_F(OpsHostSetup, PackagesWithAptPresentThenAbsent) {
    const auto h0 = (*hosts_)[0].name;
    auto present =
        write_file(*dir_, "pkg.yaml",
                   "- packages: {names: [tree], update_cache: true}\n  hosts: " + h0 + "\n");
    auto r = apply(*hosts_, inventory_, present);
    ASSERT_EQ(r.exit_code, 0) << r.describe() << r.out;
    EXPECT_TRUE(contains(r.out, "install tree")) << r.out;
    EXPECT_EQ(host_sh(*hosts_, 0, "dpkg-query -W -f='${db:Status-Status}' tree"), "installed");
    auto again = apply(*hosts_, inventory_, present);
    EXPECT_TRUE(contains(again.out, h0 + "  ok=1 changed=0")) << again.out;

    auto absent = write_file(*dir_, "pkg-absent.yaml",
                             "- packages: {names: [tree], state: absent}\n  hosts: " + h0 + "\n");
    auto check = apply(*hosts_, inventory_, absent, {"--check"});
    EXPECT_TRUE(contains(check.out, "remove tree")) << check.out;
    EXPECT_EQ(host_sh(*hosts_, 0, "dpkg-query -W -f='${db:Status-Status}' tree"), "installed");
    auto gone = apply(*hosts_, inventory_, absent);
    ASSERT_EQ(gone.exit_code, 0) << gone.describe() << gone.out;
    EXPECT_NE(host_sh(*hosts_, 0, "dpkg-query -W -f='${db:Status-Status}' tree"), "installed");
}

}  // namespace
}  // namespace tunnel::test
