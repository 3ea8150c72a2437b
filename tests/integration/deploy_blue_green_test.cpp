// `tunnel deploy` with strategy blue_green end to end: real sshd servers on
// 127.0.0.1 stand for hosts (each with its own root, as in deploy_cli_test.cpp).
// Slots alternate, the new slot is checked before traffic moves, a failing
// check leaves the old slot live (the upstream file and its reload untouched),
// and a rollback flips traffic back without touching the new slot.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

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

std::size_t count_of(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
    return n;
}

constexpr int host_count = 2;

class DeployBlueGreen : public ::testing::Test {
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
        auto d = temp_dir::create("deploy-bg");
        ASSERT_TRUE(d) << d.error().message;
        dir_.emplace(std::move(*d));
        std::string known, inv = "[web]\n";
        for (int i = 0; i < host_count; ++i) {
            known += slurp((*sshds_)[i].known_hosts_path());
            inv += fmt::format(
                "h{} ansible_host=127.0.0.1 ansible_port={} ansible_user=root deploy_root={}\n",
                i + 1, (*sshds_)[i].port(), root(i));
        }
        spit(dir_->file("known_hosts"), known);
        spit(dir_->file("hosts.ini"), inv);
        spit(dir_->file("ssh_config"), "");
        fs::create_directories(dir_->file("lb"));
        make_artifact("v1");
    }

    [[nodiscard]] std::string root(int i) const { return dir_->file(fmt::format("h{}", i + 1)); }

    void make_artifact(const std::string& version) {
        auto src = dir_->file("src-" + version);
        fs::create_directories(src);
        spit(src + "/app.txt", version + "\n");
        auto r = run({"tar", "-czf", dir_->file("app.tar.gz"), "-C", src, "."});
        ASSERT_TRUE(r.ok()) << r.describe();
    }

    std::string write_deploy(const std::string& health, const std::string& strategy_extra) {
        auto path = dir_->file("deploy.yaml");
        spit(path, fmt::format(R"(app: shop
root: "{{{{ deploy_root }}}}"
artifact: app.tar.gz
shared: [log]
health:
{}strategy:
  type: blue_green
{})",
                               health, strategy_extra));
        return path;
    }

    // An upstream file in the test dir (one host: --limit h1); the "reload" is
    // what a load balancer does: it reads the file, here into lb/live.conf.
    std::string upstream_deploy(std::uint16_t blue_port, std::uint16_t green_port) {
        return write_deploy(
            R"(  - {http: "http://127.0.0.1:{{port}}/up", body: "ok", timeout: 1s, interval: 200ms}
)",
            fmt::format(R"(  slots: {{blue: {{port: {}}}, green: {{port: {}}}}}
  upstream:
    file: {}
    template: "server 127.0.0.1:{{{{port}}}}; # {{{{ slot }}}}"
    reload: "cp {} {} && echo reload >> {}"
)",
                        blue_port, green_port, upstream(), upstream(), dir_->file("lb/live.conf"),
                        dir_->file("lb/reloads")));
    }
    [[nodiscard]] std::string upstream() const { return dir_->file("lb/upstream.conf"); }

    run_result tunnel(const std::string& cmd, const std::string& deploy,
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
        cli_options o;
        o.timeout = std::chrono::seconds(60);
        return run_tunnel(a, o);
    }

    nlohmann::json json_of(const std::string& cmd, const std::string& deploy, int want_exit,
                           std::vector<std::string> extra = {}) {
        extra.push_back("--json");
        auto r = tunnel(cmd, deploy, extra);
        EXPECT_EQ(r.exit_code, want_exit) << r.describe() << "\n" << r.out;
        auto j = nlohmann::json::parse(r.out, nullptr, false);
        EXPECT_FALSE(j.is_discarded()) << r.out << r.err;
        return j;
    }

    [[nodiscard]] std::string link_of(int i, const std::string& rel) const {
        std::error_code ec;
        auto t = fs::read_symlink(root(i) + "/" + rel, ec);
        return ec ? std::string() : t.filename().string();
    }
    [[nodiscard]] std::string current(int i) const { return link_of(i, "current"); }
    [[nodiscard]] std::string slot(int i, const std::string& s) const {
        return link_of(i, "slots/" + s);
    }
    [[nodiscard]] std::string live_slot(int i) const {
        return slurp(root(i) + "/.tunnel-deploy/live-slot");
    }
    // The release log's lines on host i.
    [[nodiscard]] std::vector<nlohmann::json> log(int i) const {
        std::vector<nlohmann::json> v;
        std::istringstream in(slurp(root(i) + "/.tunnel-deploy/log.jsonl"));
        for (std::string line; std::getline(in, line);) v.push_back(nlohmann::json::parse(line));
        return v;
    }
    static nlohmann::json host_of(const nlohmann::json& j, const std::string& host) {
        for (const auto& h : j["hosts"])
            if (h["host"] == host) return h;
        return {};
    }

    static std::vector<sshd_fixture>* sshds_;
    std::optional<temp_dir> dir_;
};
std::vector<sshd_fixture>* DeployBlueGreen::sshds_ = nullptr;

TEST_F(DeployBlueGreen, DeploysAlternateSlotsAndCheckTheNewSlotBeforeTheSwitch) {
    // The check records which slot it ran in, what that slot holds and where
    // `current` pointed at the time: the new slot is checked before the switch.
    auto deploy = write_deploy(
        R"Y(  - {command: "echo \"$DEPLOY_SLOT $(pwd -P | sed 's|.*/||') $(readlink \"$DEPLOY_ROOT/current\" | sed 's|.*/||')\" >> \"$DEPLOY_ROOT/checks\"", timeout: 1s}
)Y",
        "");
    auto first = json_of("deploy", deploy, 0);
    ASSERT_TRUE(first["ok"]) << first.dump(2);
    EXPECT_EQ(first["batches"], 1) << "blue_green switches every host at once by default";
    const std::string v1 = first["id"];
    for (int i = 0; i < host_count; ++i) {
        EXPECT_EQ(host_of(first, fmt::format("h{}", i + 1))["slot"], "blue");
        EXPECT_EQ(slot(i, "blue"), v1);
        EXPECT_EQ(slot(i, "green"), "");
        EXPECT_EQ(current(i), v1);
        EXPECT_EQ(live_slot(i), "blue\n");
        EXPECT_EQ(slurp(root(i) + "/checks"), "blue " + v1 + " \n") << "checked before the switch";
        EXPECT_EQ(log(i).back()["slot"], "blue");
        EXPECT_EQ(log(i).back()["strategy"], "blue_green");
    }

    auto check = tunnel("deploy", deploy, {"--check"});
    ASSERT_EQ(check.exit_code, 0) << check.describe() << check.out;
    EXPECT_NE(check.out.find("h1    checked      batch 1 slot green  would upload tar.gz"),
              std::string::npos)
        << check.out;
    EXPECT_NE(check.out.find("in slot green, check its health, then switch traffic blue -> "
                             "green; current " +
                             v1 + " -> "),
              std::string::npos)
        << check.out;
    EXPECT_EQ(live_slot(0), "blue\n") << "--check changed nothing";

    make_artifact("v2");
    auto second = json_of("deploy", deploy, 0);
    const std::string v2 = second["id"];
    for (int i = 0; i < host_count; ++i) {
        EXPECT_EQ(host_of(second, fmt::format("h{}", i + 1))["slot"], "green");
        EXPECT_EQ(slot(i, "blue"), v1) << "the old slot keeps its release";
        EXPECT_EQ(slot(i, "green"), v2);
        EXPECT_EQ(current(i), v2);
        EXPECT_EQ(slurp(root(i) + "/current/app.txt"), "v2\n");
        EXPECT_EQ(live_slot(i), "green\n");
        EXPECT_EQ(slurp(root(i) + "/checks"), fmt::format("blue {0} \ngreen {1} {0}\n", v1, v2));
        EXPECT_EQ(log(i).back()["slot"], "green");
    }

    make_artifact("v3");
    auto third = json_of("deploy", deploy, 0);
    const std::string v3 = third["id"];
    EXPECT_EQ(host_of(third, "h2")["slot"], "blue");
    EXPECT_EQ(slot(1, "blue"), v3);
    EXPECT_EQ(slot(1, "green"), v2);
    EXPECT_EQ(live_slot(1), "blue\n");

    auto list = tunnel("releases", deploy);
    ASSERT_EQ(list.exit_code, 0) << list.describe();
    EXPECT_NE(list.out.find(fmt::format("* {:<22}", v3)), std::string::npos) << list.out;
    EXPECT_NE(list.out.find("[blue, live]\n"), std::string::npos) << list.out;
    EXPECT_NE(list.out.find("(previous) [green]\n"), std::string::npos) << list.out;
    auto listed = nlohmann::json::parse(tunnel("releases", deploy, {"--json"}).out);
    EXPECT_EQ(listed[0]["live_slot"], "blue");
    EXPECT_EQ(listed[0]["slots"]["green"], v2);
}

TEST_F(DeployBlueGreen, AFailingCheckOnTheNewSlotLeavesTheOldSlotLive) {
    auto blue = http_origin::start("ok");
    auto green = http_origin::start("starting");
    ASSERT_TRUE(blue && green);
    auto deploy = upstream_deploy((*blue)->port(), (*green)->port());
    const auto v1 = json_of("deploy", deploy, 0, {"--limit", "h1"})["id"].get<std::string>();
    const auto blue_conf = fmt::format("server 127.0.0.1:{}; # blue\n", (*blue)->port());
    EXPECT_EQ(slurp(upstream()), blue_conf);
    EXPECT_EQ(slurp(dir_->file("lb/live.conf")), blue_conf);
    EXPECT_EQ(slurp(dir_->file("lb/reloads")), "reload\n");

    make_artifact("v2");
    auto bad = json_of("deploy", deploy, 1, {"--limit", "h1"});
    const std::string v2 = bad["id"];
    auto h1 = host_of(bad, "h1");
    EXPECT_EQ(h1["status"], "failed") << bad.dump(2);
    EXPECT_EQ(h1["slot"], "green");
    const std::string msg = h1["message"];
    EXPECT_NE(msg.find(fmt::format("slot green: health check http http://127.0.0.1:{}/up failed: "
                                   "waited ",
                                   (*green)->port())),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find("body \"starting\"; traffic stays on blue; slot green put back on nothing"),
              std::string::npos)
        << msg;
    EXPECT_GE((*green)->requests(), 1);
    EXPECT_EQ(slurp(upstream()), blue_conf) << "the upstream file was not touched";
    EXPECT_EQ(slurp(dir_->file("lb/reloads")), "reload\n") << "no reload";
    EXPECT_EQ(current(0), v1);
    EXPECT_EQ(live_slot(0), "blue\n");
    EXPECT_EQ(slot(0, "blue"), v1);
    EXPECT_EQ(slot(0, "green"), "");
    EXPECT_FALSE(fs::exists(root(0) + "/releases/" + v2)) << "the failed release is removed";
    EXPECT_EQ(log(0).back()["result"], "failed");
    EXPECT_EQ(log(0).back()["slot"], "green");

    // Green healthy: the next deploy switches the upstream to it.
    auto green_ok = http_origin::start("ok");
    ASSERT_TRUE(green_ok);
    deploy = upstream_deploy((*blue)->port(), (*green_ok)->port());
    const auto v3 = json_of("deploy", deploy, 0, {"--limit", "h1"})["id"].get<std::string>();
    const auto green_conf = fmt::format("server 127.0.0.1:{}; # green\n", (*green_ok)->port());
    EXPECT_EQ(slurp(upstream()), green_conf);
    EXPECT_EQ(slurp(dir_->file("lb/live.conf")), green_conf);
    EXPECT_EQ(slurp(dir_->file("lb/reloads")), "reload\nreload\n");
    EXPECT_EQ(current(0), v3);
    EXPECT_EQ(slot(0, "blue"), v1);
    EXPECT_FALSE(fs::exists(root(1))) << "--limit h1: h2 never touched";
}

TEST_F(DeployBlueGreen, RollbackFlipsBackWithoutTouchingTheNewSlot) {
    auto blue = http_origin::start("ok");
    auto green = http_origin::start("ok");
    ASSERT_TRUE(blue && green);
    auto deploy = upstream_deploy((*blue)->port(), (*green)->port());
    const auto v1 = json_of("deploy", deploy, 0, {"--limit", "h1"})["id"].get<std::string>();
    make_artifact("v2");
    const auto v2 = json_of("deploy", deploy, 0, {"--limit", "h1"})["id"].get<std::string>();
    ASSERT_EQ(live_slot(0), "green\n");
    const auto release2 = root(0) + "/releases/" + v2;
    struct stat before {};
    ASSERT_EQ(::lstat((release2 + "/app.txt").c_str(), &before), 0);
    struct stat link_before {};
    ASSERT_EQ(::lstat((root(0) + "/slots/green").c_str(), &link_before), 0);
    const int green_requests = (*green)->requests();

    auto back = json_of("rollback", deploy, 0, {"--limit", "h1"});
    auto h1 = host_of(back, "h1");
    EXPECT_EQ(h1["status"], "deployed") << back.dump(2);
    EXPECT_EQ(h1["slot"], "blue");
    EXPECT_EQ(h1["message"], fmt::format("{} -> {} (slot blue live)", v2, v1));
    EXPECT_EQ(current(0), v1);
    EXPECT_EQ(live_slot(0), "blue\n");
    EXPECT_EQ(slurp(upstream()), fmt::format("server 127.0.0.1:{}; # blue\n", (*blue)->port()));
    EXPECT_EQ(slurp(dir_->file("lb/reloads")), "reload\nreload\nreload\n");
    // The new slot is untouched: same link (inode), same release files.
    EXPECT_EQ(slot(0, "green"), v2);
    struct stat link_after {};
    ASSERT_EQ(::lstat((root(0) + "/slots/green").c_str(), &link_after), 0);
    EXPECT_EQ(link_after.st_ino, link_before.st_ino);
    struct stat after {};
    ASSERT_EQ(::lstat((release2 + "/app.txt").c_str(), &after), 0);
    EXPECT_EQ(after.st_ino, before.st_ino);
    EXPECT_EQ(after.st_mtime, before.st_mtime);
    EXPECT_EQ(slurp(release2 + "/app.txt"), "v2\n");
    EXPECT_EQ((*green)->requests(), green_requests) << "the rollback checked blue, not green";
    auto entry = log(0).back();
    EXPECT_EQ(entry["action"], "rollback");
    EXPECT_EQ(entry["id"], v1);
    EXPECT_EQ(entry["slot"], "blue");
    EXPECT_EQ(entry["previous"], v2);

    // And forward again: the recorded previous (v2) is in green, still warm.
    auto forward = json_of("rollback", deploy, 0, {"--limit", "h1"});
    EXPECT_EQ(host_of(forward, "h1")["slot"], "green") << forward.dump(2);
    EXPECT_EQ(current(0), v2);
    EXPECT_EQ(live_slot(0), "green\n");
    EXPECT_EQ(slot(0, "blue"), v1);
    EXPECT_EQ(count_of(slurp(dir_->file("lb/reloads")), "reload"), 4u);
}

TEST_F(DeployBlueGreen, AFailingHostSwitchesTheFleetBackToTheOldSlots) {
    auto deploy = write_deploy(
        R"(  - {command: "test ! -e \"$DEPLOY_ROOT/FAIL_HEALTH\"", timeout: 1s, interval: 200ms}
)",
        "  batch: 1\n");
    const auto v1 = json_of("deploy", deploy, 0)["id"].get<std::string>();
    make_artifact("v2");
    const auto v2 = json_of("deploy", deploy, 0)["id"].get<std::string>();
    make_artifact("v3");
    spit(root(1) + "/FAIL_HEALTH", "");
    auto j = json_of("deploy", deploy, 1);
    const std::string v3 = j["id"];
    EXPECT_EQ(host_of(j, "h1")["status"], "rolled back") << j.dump(2);
    EXPECT_EQ(host_of(j, "h1")["message"], "max_fail_percentage exceeded");
    EXPECT_EQ(host_of(j, "h2")["status"], "failed");
    EXPECT_NE(host_of(j, "h2")["message"].get<std::string>().find(
                  "; traffic stays on green; slot blue put back on " + v1),
              std::string::npos)
        << j.dump(2);
    EXPECT_TRUE(j["fleet_rolled_back"]);
    for (int i = 0; i < host_count; ++i) {
        EXPECT_EQ(current(i), v2) << "host " << i + 1;
        EXPECT_EQ(live_slot(i), "green\n");
        EXPECT_EQ(slot(i, "green"), v2);
        EXPECT_EQ(slot(i, "blue"), v1) << "the idle slot is back on the release it held";
        EXPECT_FALSE(fs::exists(root(i) + "/releases/" + v3));
    }
}

TEST_F(DeployBlueGreen, AFailedReloadPutsTheUpstreamFileBack) {
    auto blue = http_origin::start("ok");
    auto green = http_origin::start("ok");
    ASSERT_TRUE(blue && green);
    auto deploy = upstream_deploy((*blue)->port(), (*green)->port());
    const auto v1 = json_of("deploy", deploy, 0, {"--limit", "h1"})["id"].get<std::string>();
    const auto blue_conf = slurp(upstream());
    // The load balancer refuses the next file (e.g. `nginx -t` fails).
    auto text = slurp(deploy);
    text.replace(text.find("reload: \"cp"), 11, "reload: \"grep -q blue " + upstream() + " && cp");
    spit(deploy, text);
    make_artifact("v2");
    auto bad = json_of("deploy", deploy, 1, {"--limit", "h1"});
    const std::string msg = host_of(bad, "h1")["message"];
    EXPECT_NE(msg.find("switching traffic to slot green: reload `grep -q blue"), std::string::npos)
        << msg;
    EXPECT_NE(msg.find(upstream() + " was put back and traffic stays where it was"),
              std::string::npos)
        << msg;
    EXPECT_EQ(slurp(upstream()), blue_conf);
    EXPECT_EQ(current(0), v1);
    EXPECT_EQ(live_slot(0), "blue\n");
    EXPECT_EQ(slot(0, "green"), "");
}

}  // namespace
}  // namespace tunnel::test
