// `tunnel apply` end to end against a real sshd on 127.0.0.1: file and
// directory steps in a temp dir (nothing outside it is touched), re-apply
// reports 0 changed, --check changes nothing, --diff, --json counts, an
// unreachable host while the other continues, and plan errors.
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/net.hpp"
#include "support/process.hpp"
#include "support/sshd_fixture.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void spit(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
}

class OpsApplyCli : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        auto s = sshd_fixture::start();
        ASSERT_TRUE(s) << s.error().message;
        sshd_ = new sshd_fixture(std::move(*s));
    }
    static void TearDownTestSuite() {
        delete sshd_;
        sshd_ = nullptr;
    }
    void SetUp() override {
        auto d = temp_dir::create("ops-apply");
        ASSERT_TRUE(d) << d.error().message;
        dir_.emplace(std::move(*d));
        spit(dir_->file("hosts.ini"),
             fmt::format(
                 "[locals]\nlocal ansible_host=127.0.0.1 ansible_port={} ansible_user=root\n",
                 sshd_->port()));
    }
    // apply's connection flags: the fixture's, with --private-key for -i.
    std::vector<std::string> apply_args(const std::string& plan, std::vector<std::string> extra,
                                        const std::string& inventory = "") {
        std::vector<std::string> args{"apply", plan, "-i",
                                      inventory.empty() ? dir_->file("hosts.ini") : inventory};
        auto flags = fixture_flags(*sshd_);
        for (std::size_t i = 0; i < flags.size(); ++i) {
            if (flags[i] == "-p") {
                ++i;  // the port comes from the inventory
                continue;
            }
            args.push_back(flags[i] == "-i" ? "--private-key" : flags[i]);
        }
        args.insert(args.end(), extra.begin(), extra.end());
        return args;
    }
    std::string write_plan(const std::string& text) {
        auto path = dir_->file("plan.yaml");
        spit(path, text);
        return path;
    }
    std::string files_plan() {
        return write_plan(fmt::format(R"(- name: app dir
  directory: {{path: {0}/app, mode: "0750"}}
- name: app config
  file:
    path: {0}/app/app.conf
    content: "port = 8080\nworkers = 4\n"
    mode: "0640"
    backup: true
- name: only on other distros
  when: facts.distro == 'no-such-distro'
  file: {{path: {0}/never, content: x}}
)",
                                      dir_->path()));
    }

    static sshd_fixture* sshd_;
    std::optional<temp_dir> dir_;
};
sshd_fixture* OpsApplyCli::sshd_ = nullptr;

TEST_F(OpsApplyCli, AppliesThenReportsNothingChangedOnTheSecondRun) {
    auto plan = files_plan();
    auto first = run_tunnel(apply_args(plan, {}));
    ASSERT_EQ(first.exit_code, 0) << first.describe() << first.out;
    EXPECT_NE(first.out.find("local  ok=0 changed=2 failed=0 skipped=1 unreachable=0"),
              std::string::npos)
        << first.out;
    EXPECT_EQ(slurp(dir_->file("app/app.conf")), "port = 8080\nworkers = 4\n");
    struct stat st {};
    ASSERT_EQ(::stat(dir_->file("app/app.conf").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0640u);
    ASSERT_EQ(::stat(dir_->file("app").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0750u);
    EXPECT_NE(::access(dir_->file("never").c_str(), F_OK), 0);

    auto second = run_tunnel(apply_args(plan, {"--json"}));
    ASSERT_EQ(second.exit_code, 0) << second.describe();
    auto j = nlohmann::json::parse(second.out);
    EXPECT_EQ(j["recap"]["local"]["ok"], 2);
    EXPECT_EQ(j["recap"]["local"]["changed"], 0);
    EXPECT_EQ(j["recap"]["local"]["skipped"], 1);
    EXPECT_EQ(j["steps"].size(), 3u);
}

TEST_F(OpsApplyCli, CheckModeChangesNothingAndDiffShowsTheEdit) {
    auto plan = files_plan();
    ASSERT_EQ(run_tunnel(apply_args(plan, {})).exit_code, 0);
    const std::string edited = "port = 9090\nworkers = 4\n";
    spit(dir_->file("app/app.conf"), edited);
    ::chmod(dir_->file("app/app.conf").c_str(), 0644);

    auto check = run_tunnel(apply_args(plan, {"--check", "--diff"}));
    ASSERT_EQ(check.exit_code, 0) << check.describe();
    EXPECT_NE(check.out.find("-port = 9090\n+port = 8080\n"), std::string::npos) << check.out;
    EXPECT_NE(check.out.find("mode of " + dir_->file("app/app.conf") + ": 644 -> 640"),
              std::string::npos)
        << check.out;
    EXPECT_NE(check.out.find("changed=1"), std::string::npos) << check.out;
    // Nothing changed on the host.
    EXPECT_EQ(slurp(dir_->file("app/app.conf")), edited);
    struct stat st {};
    ASSERT_EQ(::stat(dir_->file("app/app.conf").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0644u);

    // A real run puts it back and keeps a backup of the edited version.
    auto fix = run_tunnel(apply_args(plan, {}));
    ASSERT_EQ(fix.exit_code, 0) << fix.describe();
    EXPECT_EQ(slurp(dir_->file("app/app.conf")), "port = 8080\nworkers = 4\n");
    auto ls = run({"sh", "-c", "cat " + dir_->path() + "/app/app.conf.*~"});
    EXPECT_EQ(ls.out, edited);
}

TEST_F(OpsApplyCli, UnreachableHostIsReportedWhileTheOtherContinues) {
    auto closed = unused_port();
    ASSERT_TRUE(closed);
    auto inv = dir_->file("two.ini");
    spit(inv, fmt::format("[all]\nlocal ansible_host=127.0.0.1 ansible_port={}\ndead "
                          "ansible_host=127.0.0.1 ansible_port={}\n",
                          sshd_->port(), *closed));
    auto r = run_tunnel(apply_args(files_plan(), {"-l", "root"}, inv));
    EXPECT_EQ(r.exit_code, 4) << r.describe() << r.out;
    EXPECT_NE(r.out.find("local  ok=0 changed=2 failed=0 skipped=1 unreachable=0"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("dead   ok=0 changed=0 failed=0 skipped=0 unreachable=1"),
              std::string::npos)
        << r.out;
    EXPECT_EQ(slurp(dir_->file("app/app.conf")), "port = 8080\nworkers = 4\n");
}

TEST_F(OpsApplyCli, FailingStepStopsItsHostAndNamesTheStep) {
    auto plan = write_plan(fmt::format(R"(- name: parent is a file
  file: {{path: {0}/plain, content: "x\n"}}
- name: dir over a file
  directory: {{path: {0}/plain}}
- name: never reached
  file: {{path: {0}/after, content: "y\n"}}
)",
                                       dir_->path()));
    auto r = run_tunnel(apply_args(plan, {}));
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_NE(r.out.find("failed step 2 (dir over a file)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("not a directory"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("ok=0 changed=1 failed=1 skipped=0"), std::string::npos) << r.out;
    EXPECT_NE(::access(dir_->file("after").c_str(), F_OK), 0);
}

TEST_F(OpsApplyCli, PlanErrorsNameFileStepAndKey) {
    auto plan = write_plan(
        "- name: typo\n  file: {path: /tmp/x, contnet: y}\n- name: two modules\n  file: {path: "
        "/tmp/x, "
        "content: y}\n  directory: {path: /tmp/y}\n- frobnicate: {}\n");
    auto r = run_tunnel(apply_args(plan, {}));
    EXPECT_EQ(r.exit_code, 2) << r.describe();
    EXPECT_NE(r.err.find(plan + ": step 1 (typo).file.contnet: unknown key"), std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("step 2 (two modules).directory: a step has exactly one module"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("step 3.frobnicate: unknown module"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace tunnel::test
