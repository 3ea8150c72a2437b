// `tunnel deploy`, `rollback` and `releases` end to end: three real sshd
// servers on 127.0.0.1 stand for three hosts, each with its own deploy root
// in a temp dir (root: "{{ deploy_root }}" from the inventory). Releases,
// the atomic switch, checksum skips, the lock, pruning, rollbacks, health
// checks that fail in a batch, max_fail_percentage and a client killed with
// SIGKILL mid-deploy.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/process.hpp"
#include "support/sshd_fixture.hpp"
#include "support/tcp_servers.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void spit(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
}

constexpr int host_count = 3;

class DeployCli : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        sshds_ = new std::vector<sshd_fixture>();
        for (int i = 0; i < host_count; ++i) {
            auto s = sshd_fixture::start();
            ASSERT_TRUE(s) << s.error().message;
            sshds_->push_back(std::move(*s));
        }
    }
    static void TearDownTestSuite() {
        delete sshds_;
        sshds_ = nullptr;
    }
    void SetUp() override {
        auto d = temp_dir::create("deploy-cli");
        ASSERT_TRUE(d) << d.error().message;
        dir_.emplace(std::move(*d));
        std::string known, inv = "[web]\n";
        for (int i = 0; i < host_count; ++i) {
            known += slurp((*sshds_)[i].known_hosts_path());
            inv += fmt::format(
                "h{} ansible_host=127.0.0.1 ansible_port={} ansible_user=root "
                "deploy_root={}\n",
                i + 1, (*sshds_)[i].port(), root(i));
        }
        spit(dir_->file("known_hosts"), known);
        spit(dir_->file("hosts.ini"), inv);
        spit(dir_->file("ssh_config"), "");
        make_artifact("v1");
    }

    [[nodiscard]] std::string root(int i) const { return dir_->file(fmt::format("h{}", i + 1)); }

    // app.tar.gz holding app.txt (the version), log/seed and complete.marker.
    void make_artifact(const std::string& version) {
        auto src = dir_->file("src-" + version);
        fs::create_directories(src + "/log");
        spit(src + "/app.txt", version + "\n");
        spit(src + "/log/seed", "from the artifact\n");
        spit(src + "/complete.marker", "yes\n");
        auto r = run({"tar", "-czf", dir_->file("app.tar.gz"), "-C", src, "."});
        ASSERT_TRUE(r.ok()) << r.describe();
    }

    std::string write_deploy(const std::string& extra,
                             const std::string& strategy = "{type: rolling, batch: 2}") {
        auto path = dir_->file("deploy.yaml");
        spit(path, fmt::format(R"(app: shop
root: "{{{{ deploy_root }}}}"
artifact: app.tar.gz
shared: [log, .env]
keep_releases: 5
health:
  - {{command: "test ! -e \"$DEPLOY_ROOT/FAIL_HEALTH\"", timeout: 1s, interval: 200ms}}
strategy: {}
{})",
                               strategy, extra));
        return path;
    }

    std::vector<std::string> args(const std::string& cmd, const std::string& deploy,
                                  std::vector<std::string> extra = {}) {
        std::vector<std::string> a{cmd,
                                   deploy,
                                   "-i",
                                   dir_->file("hosts.ini"),
                                   "--private-key",
                                   (*sshds_)[0].client_key_path(),
                                   "-F",
                                   dir_->file("ssh_config"),
                                   "-o",
                                   "UserKnownHostsFile=" + dir_->file("known_hosts"),
                                   "-o",
                                   "GlobalKnownHostsFile=/dev/null",
                                   "-o",
                                   "StrictHostKeyChecking=yes",
                                   "-o",
                                   "BatchMode=yes"};
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
    }

    nlohmann::json deploy_json(const std::string& deploy, int want_exit,
                               const std::string& cmd = "deploy",
                               std::vector<std::string> extra = {}) {
        extra.push_back("--json");
        cli_options o;
        o.timeout = std::chrono::seconds(60);
        auto r = run_tunnel(args(cmd, deploy, extra), o);
        EXPECT_EQ(r.exit_code, want_exit) << r.describe() << "\n" << r.out;
        auto j = nlohmann::json::parse(r.out, nullptr, false);
        EXPECT_FALSE(j.is_discarded()) << r.out << r.err;
        return j;
    }

    // The release `current` points at on host i ("" when none).
    [[nodiscard]] std::string current(int i) const {
        std::error_code ec;
        auto t = fs::read_symlink(root(i) + "/current", ec);
        return ec ? std::string() : t.filename().string();
    }
    [[nodiscard]] std::vector<std::string> releases(int i) const {
        std::vector<std::string> v;
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(root(i) + "/releases", ec))
            v.push_back(e.path().filename().string());
        std::sort(v.begin(), v.end());
        return v;
    }
    static std::string status_of(const nlohmann::json& j, const std::string& host) {
        for (const auto& h : j["hosts"])
            if (h["host"] == host) return h["status"];
        return "missing";
    }
    static nlohmann::json host_of(const nlohmann::json& j, const std::string& host) {
        for (const auto& h : j["hosts"])
            if (h["host"] == host) return h;
        return {};
    }

    static std::vector<sshd_fixture>* sshds_;
    std::optional<temp_dir> dir_;
};
std::vector<sshd_fixture>* DeployCli::sshds_ = nullptr;

TEST_F(DeployCli, DeploysEveryHostSkipsAnUnchangedArtifactListsAndRollsBack) {
    auto deploy = write_deploy("");
    auto first = deploy_json(deploy, 0);
    ASSERT_TRUE(first["ok"]) << first.dump(2);
    EXPECT_EQ(first["batches"], 2);
    const std::string id1 = first["id"];
    auto sha = run({"sha256sum", dir_->file("app.tar.gz")}).out.substr(0, 64);
    EXPECT_EQ(first["artifact_sha256"], sha);
    for (int i = 0; i < host_count; ++i) {
        auto h = host_of(first, fmt::format("h{}", i + 1));
        EXPECT_EQ(h["status"], "deployed") << h.dump();
        EXPECT_EQ(h["uploaded"], true);
        EXPECT_EQ(h["batch"], i < 2 ? 1 : 2);
        EXPECT_EQ(current(i), id1);
        EXPECT_EQ(fs::read_symlink(root(i) + "/current").string(), root(i) + "/releases/" + id1);
        EXPECT_EQ(slurp(root(i) + "/current/app.txt"), "v1\n");
        // shared paths: log seeded from the artifact, .env created empty, both links.
        EXPECT_TRUE(fs::is_symlink(root(i) + "/current/log"));
        EXPECT_EQ(slurp(root(i) + "/shared/log/seed"), "from the artifact\n");
        EXPECT_TRUE(fs::is_symlink(root(i) + "/current/.env"));
        EXPECT_TRUE(fs::is_regular_file(root(i) + "/shared/.env"));
        auto log = nlohmann::json::parse(slurp(root(i) + "/.tunnel-deploy/log.jsonl"));
        EXPECT_EQ(log["id"], id1);
        EXPECT_EQ(log["artifact_sha256"], sha);
        EXPECT_EQ(log["result"], "success");
        EXPECT_EQ(log["strategy"], "rolling");
        EXPECT_FALSE(log["user"].get<std::string>().empty());
        EXPECT_FALSE(fs::exists(root(i) + "/.tunnel-deploy/lock"));
    }

    auto second = deploy_json(deploy, 0);
    const std::string id2 = second["id"];
    ASSERT_NE(id1, id2);
    for (int i = 0; i < host_count; ++i) {
        auto h = host_of(second, fmt::format("h{}", i + 1));
        EXPECT_EQ(h["uploaded"], false) << "same artifact: the upload is skipped";
        EXPECT_EQ(h["previous"], id1);
        EXPECT_EQ(current(i), id2);
    }

    auto list = run_tunnel(args("releases", deploy));
    ASSERT_EQ(list.exit_code, 0) << list.describe();
    EXPECT_NE(list.out.find("h3:\n  * " + id2), std::string::npos) << list.out;
    EXPECT_NE(list.out.find(id1), std::string::npos) << list.out;
    EXPECT_NE(list.out.find("(previous)"), std::string::npos) << list.out;

    auto back = deploy_json(deploy, 0, "rollback");
    for (int i = 0; i < host_count; ++i) EXPECT_EQ(current(i), id1);
    auto to = deploy_json(deploy, 0, "rollback", {"--to", id2});
    for (int i = 0; i < host_count; ++i) EXPECT_EQ(current(i), id2);
    auto missing = deploy_json(deploy, 1, "rollback", {"--to", "20000101-000000-000"});
    EXPECT_NE(host_of(missing, "h1")["message"].get<std::string>().find("is not on this host"),
              std::string::npos);
    for (int i = 0; i < host_count; ++i) EXPECT_EQ(current(i), id2);
}

TEST_F(DeployCli, PruningKeepsTheNewestAndNeverTheCurrentOrPreviousRelease) {
    auto deploy = write_deploy("", "{type: recreate}");
    auto text = slurp(deploy);
    text.replace(text.find("keep_releases: 5"), 16, "keep_releases: 2");
    spit(deploy, text);
    std::vector<std::string> ids;
    for (int k = 0; k < 3; ++k) ids.push_back(deploy_json(deploy, 0)["id"]);
    for (int i = 0; i < host_count; ++i)
        EXPECT_EQ(releases(i), (std::vector<std::string>{ids[1], ids[2]}));
    deploy_json(deploy, 0, "rollback");           // current ids[1], previous ids[2]
    ids.push_back(deploy_json(deploy, 0)["id"]);  // current ids[3], previous ids[1]
    for (int i = 0; i < host_count; ++i)
        EXPECT_EQ(releases(i), (std::vector<std::string>{ids[1], ids[2], ids[3]}))
            << "the previous release (" << ids[1] << ") is kept though it is the oldest";
    ids.push_back(deploy_json(deploy, 0)["id"]);
    for (int i = 0; i < host_count; ++i)
        EXPECT_EQ(releases(i), (std::vector<std::string>{ids[3], ids[4]}));
}

TEST_F(DeployCli, ASecondDeployIsRefusedByTheLockAndNamesItsHolder) {
    auto deploy = write_deploy("hooks: {before_upload: [\"sleep 2\"]}\n", "{type: recreate}");
    auto home = temp_dir::create("deploy-home");
    ASSERT_TRUE(home);
    auto first = spawn_tunnel(args("deploy", deploy, {"--json"}), home->path(),
                              dir_->file("first.out"), dir_->file("first.err"));
    ASSERT_TRUE(first) << first.error().message;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    auto all_locked = [&] {
        for (int i = 0; i < host_count; ++i)
            if (!fs::exists(root(i) + "/.tunnel-deploy/lock/holder")) return false;
        return true;
    };
    while (!all_locked() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_TRUE(all_locked()) << slurp(dir_->file("first.err"));

    auto second = run_tunnel(args("deploy", deploy));
    EXPECT_EQ(second.exit_code, 1) << second.describe() << second.out;
    EXPECT_NE(second.out.find("is locked by another deploy: root@"), std::string::npos)
        << second.out;
    EXPECT_NE(second.out.find(fmt::format("(pid {}) since ", first->pid())), std::string::npos)
        << second.out;
    EXPECT_NE(second.out.find("nothing was switched"), std::string::npos) << second.out;

    auto code = first->wait(std::chrono::seconds(60));
    ASSERT_TRUE(code);
    EXPECT_EQ(*code, 0) << slurp(dir_->file("first.out")) << slurp(dir_->file("first.err"));
    auto j = nlohmann::json::parse(slurp(dir_->file("first.out")));
    for (int i = 0; i < host_count; ++i) {
        EXPECT_EQ(current(i), j["id"]);
        EXPECT_FALSE(fs::exists(root(i) + "/.tunnel-deploy/lock")) << "the first deploy's lock "
                                                                      "is released, and the "
                                                                      "refused one took none";
        EXPECT_EQ(releases(i).size(), 1u) << "the refused deploy left no release behind";
    }
}

TEST_F(DeployCli, AFailingHealthCheckRollsBackItsBatchAndTheOthersContinue) {
    auto deploy = write_deploy("", "{type: rolling, batch: 1, max_fail_percentage: 50}");
    const std::string v1 = deploy_json(deploy, 0)["id"];
    make_artifact("v2");
    spit(root(1) + "/FAIL_HEALTH", "");
    auto j = deploy_json(deploy, 1);
    const std::string v2 = j["id"];
    EXPECT_EQ(status_of(j, "h1"), "deployed") << j.dump(2);
    EXPECT_EQ(status_of(j, "h2"), "failed") << j.dump(2);
    EXPECT_EQ(status_of(j, "h3"), "deployed") << j.dump(2);
    const std::string msg = host_of(j, "h2")["message"];
    EXPECT_NE(msg.find("health check command test ! -e \"$DEPLOY_ROOT/FAIL_HEALTH\" failed: "
                       "waited "),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find("last answer: exit 1"), std::string::npos) << msg;
    EXPECT_NE(msg.find("switched back to " + v1), std::string::npos) << msg;
    EXPECT_EQ(current(0), v2);
    EXPECT_EQ(current(1), v1);
    EXPECT_EQ(slurp(root(1) + "/current/app.txt"), "v1\n");
    EXPECT_EQ(current(2), v2);
    EXPECT_EQ(releases(1), std::vector<std::string>{v1}) << "the failed release is removed";
    EXPECT_FALSE(j["fleet_rolled_back"]);
}

TEST_F(DeployCli, ExceedingMaxFailPercentageRollsBackTheWholeFleet) {
    auto deploy = write_deploy("", "{type: rolling, batch: 1, max_fail_percentage: 0}");
    const std::string v1 = deploy_json(deploy, 0)["id"];
    make_artifact("v2");
    spit(root(1) + "/FAIL_HEALTH", "");
    auto j = deploy_json(deploy, 1);
    EXPECT_EQ(status_of(j, "h1"), "rolled back") << j.dump(2);
    EXPECT_EQ(host_of(j, "h1")["message"], "max_fail_percentage exceeded");
    EXPECT_EQ(status_of(j, "h2"), "failed");
    EXPECT_EQ(status_of(j, "h3"), "not switched");
    EXPECT_TRUE(j["fleet_rolled_back"]);
    EXPECT_NE(j["stopped"].get<std::string>().find("1 of 3 hosts failed"), std::string::npos);
    for (int i = 0; i < host_count; ++i) {
        EXPECT_EQ(current(i), v1) << "host " << i + 1;
        EXPECT_EQ(slurp(root(i) + "/current/app.txt"), "v1\n");
        EXPECT_EQ(releases(i), std::vector<std::string>{v1});
        EXPECT_FALSE(fs::exists(root(i) + "/.tunnel-deploy/lock"));
    }
}

TEST_F(DeployCli, CanaryFailureStopsBeforeTheRestAndHttpChecksSayWhatTheyGot) {
    auto origin = http_origin::start("ok");
    ASSERT_TRUE(origin) << origin.error().message;
    auto deploy = write_deploy(
        fmt::format(R"(  - {{http: "http://127.0.0.1:{}/up", status: 200, body: "ok", timeout: 5s}}
)",
                    (*origin)->port()),
        "{type: canary}");
    // The extra check goes into the health list (it follows the strategy line,
    // so move it up).
    auto text = slurp(deploy);
    auto check = text.substr(text.rfind("  - {http"));
    text.erase(text.rfind("  - {http"));
    text.insert(text.find("strategy:"), check);
    spit(deploy, text);
    auto ok = deploy_json(deploy, 0);
    EXPECT_EQ(ok["batches"], 2);
    EXPECT_GE((*origin)->requests(), 3);

    const std::string good = "body: \"ok\", timeout: 5s";
    text.replace(text.find(good), good.size(), "body: \"nope\", timeout: 1s");
    spit(deploy, text);
    auto bad = deploy_json(deploy, 1);
    EXPECT_EQ(status_of(bad, "h1"), "failed") << bad.dump(2);
    EXPECT_EQ(status_of(bad, "h2"), "not switched");
    EXPECT_EQ(status_of(bad, "h3"), "not switched");
    const std::string msg = host_of(bad, "h1")["message"];
    EXPECT_NE(msg.find(fmt::format("health check http http://127.0.0.1:{}/up failed: waited ",
                                   (*origin)->port())),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find("last answer: status 200 in "), std::string::npos) << msg;
    EXPECT_NE(msg.find("body \"ok\""), std::string::npos) << msg;
    for (int i = 0; i < host_count; ++i) EXPECT_EQ(current(i), ok["id"]);
}

TEST_F(DeployCli, AClientKilledMidDeployLeavesCurrentOnACompleteRelease) {
    auto deploy =
        write_deploy("hooks: {before_switch: [\"sleep 0.2\"]}\n", "{type: rolling, batch: 1}");
    const std::string v1 = deploy_json(deploy, 0)["id"];
    make_artifact("v2");
    auto home = temp_dir::create("deploy-home");
    ASSERT_TRUE(home);
    for (int delay_ms : {150, 450, 750, 1050, 1350}) {
        auto child = spawn_tunnel(args("deploy", deploy), home->path(), dir_->file("kill.out"),
                                  dir_->file("kill.err"));
        ASSERT_TRUE(child) << child.error().message;
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
        child->signal(SIGKILL);
        (void)child->wait(std::chrono::seconds(10));
        std::this_thread::sleep_for(std::chrono::milliseconds(300));  // let sshd's sessions end
        for (int i = 0; i < host_count; ++i) {
            auto cur = current(i);
            ASSERT_FALSE(cur.empty()) << "host " << i + 1 << " after " << delay_ms << " ms";
            EXPECT_EQ(cur.find("partial"), std::string::npos);
            EXPECT_EQ(slurp(root(i) + "/current/complete.marker"), "yes\n")
                << "host " << i + 1 << " after " << delay_ms << " ms: current -> " << cur;
        }
        auto unlock = run_tunnel(args("deploy", deploy, {"--unlock"}));
        EXPECT_EQ(unlock.exit_code, 0) << unlock.describe();
        for (int i = 0; i < host_count; ++i)
            EXPECT_FALSE(fs::exists(root(i) + "/.tunnel-deploy/lock"));
    }
    // A stale lock is reported with its holder when removed.
    fs::create_directories(root(0) + "/.tunnel-deploy/lock");
    spit(root(0) + "/.tunnel-deploy/lock/holder",
         R"({"user":"alice","host":"laptop","pid":4242,"since":"2026-12-06T16:05:12Z"})"
         "\n");
    auto unlock = run_tunnel(args("deploy", deploy, {"--unlock"}));
    EXPECT_EQ(unlock.exit_code, 0) << unlock.describe();
    EXPECT_NE(
        unlock.out.find(
            "h1: unlocked; it was held by alice@laptop (pid 4242) since 2026-12-06T16:05:12Z"),
        std::string::npos)
        << unlock.out;
    EXPECT_NE(unlock.out.find("h2: was not locked"), std::string::npos) << unlock.out;
    // And the next deploy goes through.
    auto j = deploy_json(deploy, 0);
    for (int i = 0; i < host_count; ++i) EXPECT_EQ(slurp(root(i) + "/current/app.txt"), "v2\n");
}

TEST_F(DeployCli, CheckChangesNothingAndTheTextOutputHasProgressAndARecap) {
    auto deploy = write_deploy("");
    auto check = run_tunnel(args("deploy", deploy, {"--check"}));
    ASSERT_EQ(check.exit_code, 0) << check.describe() << check.out;
    EXPECT_NE(check.out.find("h1    checked      batch 1  would upload tar.gz"), std::string::npos)
        << check.out;
    EXPECT_NE(check.out.find("h3    checked      batch 2"), std::string::npos) << check.out;
    EXPECT_NE(check.out.find("switch (no release) -> "), std::string::npos) << check.out;
    for (int i = 0; i < host_count; ++i)
        EXPECT_FALSE(fs::exists(root(i))) << "--check changed a host";

    auto real = run_tunnel(args("deploy", deploy));
    ASSERT_EQ(real.exit_code, 0) << real.describe() << real.out;
    const auto id = current(0);
    for (const std::string& want : std::vector<std::string>{
             "[prepare] h2: artifact uploaded, release " + id + " unpacked",
             "[batch 1/2] switching h1, h2", "[batch 2/2] h3: switched to " + id + ", healthy",
             "\nRECAP rolling " + id + "\n", "h1    deployed     batch 1\n",
             "3 of 3 hosts on the new release"})
        EXPECT_NE(real.out.find(want), std::string::npos) << want << "\n" << real.out;
}

TEST_F(DeployCli, ABadDeployFileFailsBeforeAnyHostIsTouched) {
    auto deploy = write_deploy("", "{type: rolling, btach: 2}");
    auto r = run_tunnel(args("deploy", deploy));
    EXPECT_EQ(r.exit_code, 2) << r.describe();
    EXPECT_NE(r.err.find(deploy + ": strategy.btach: unknown key (line 8)"), std::string::npos)
        << r.err;
    for (int i = 0; i < host_count; ++i) EXPECT_FALSE(fs::exists(root(i)));
}

}  // namespace
}  // namespace tunnel::test
