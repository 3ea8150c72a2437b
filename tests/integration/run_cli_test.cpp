// tunnel run against several real sshd servers: fan-out, patterns, output
// modes, a server killed mid-run, a stalled host bounded by --timeout.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/process.hpp"
#include "support/sshd_fixture.hpp"
#include "support/tcp_servers.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

using namespace std::chrono_literals;

class RunCli : public ::testing::Test {
  protected:
    void SetUp() override {
        auto d = temp_dir::create("tunnel-run-test");
        ASSERT_TRUE(d) << d.error().message;
        dir_.emplace(std::move(*d));
        std::string known_hosts;
        for (int i = 0; i < 3; ++i) {
            auto s = sshd_fixture::start();
            ASSERT_TRUE(s) << s.error().message;
            auto kh = read_text_file(s->known_hosts_path());
            ASSERT_TRUE(kh);
            known_hosts += *kh;
            sshd_.push_back(std::move(*s));
        }
        ASSERT_TRUE(write_text_file(dir_->file("known_hosts"), known_hosts, 0600));
        std::string inv =
            "all:\n  vars:\n    ansible_host: 127.0.0.1\n    ansible_user: root\n  children:\n";
        inv += fmt::format(
            "    web:\n      hosts:\n        web1: {{ansible_port: {}}}\n        web2: "
            "{{ansible_port: {}}}\n",
            sshd_[0].port(), sshd_[1].port());
        inv += fmt::format("    db:\n      hosts:\n        db1: {{ansible_port: {}}}\n",
                           sshd_[2].port());
        ASSERT_TRUE(write_text_file(dir_->file("inventory.yml"), inv));
    }

    std::vector<std::string> args(std::vector<std::string> extra, std::vector<std::string> command,
                                  const std::string& inventory = "") const {
        std::vector<std::string> a{"run",
                                   "-i",
                                   inventory.empty() ? dir_->file("inventory.yml") : inventory,
                                   "-F",
                                   "/dev/null",
                                   "--private-key",
                                   sshd_[0].client_key_path(),
                                   "-o",
                                   "UserKnownHostsFile=" + dir_->file("known_hosts"),
                                   "-o",
                                   "GlobalKnownHostsFile=/dev/null",
                                   "-o",
                                   "StrictHostKeyChecking=yes"};
        a.insert(a.end(), extra.begin(), extra.end());
        a.push_back("--");
        a.insert(a.end(), command.begin(), command.end());
        return a;
    }

    static nlohmann::json parse_json(const run_result& r) {
        auto j = nlohmann::json::parse(r.out, nullptr, false);
        EXPECT_FALSE(j.is_discarded()) << r.out << r.err;
        return j;
    }

    static const nlohmann::json* host_entry(const nlohmann::json& doc, const std::string& name) {
        for (const auto& h : doc["hosts"])
            if (h["host"] == name) return &h;
        return nullptr;
    }

    std::optional<temp_dir> dir_;
    std::vector<sshd_fixture> sshd_;
};

TEST_F(RunCli, EveryHostRunsAndOutputIsPrefixed) {
    auto r = run_tunnel(args({}, {"echo out-$((6*7)); echo err-line >&2"}));
    ASSERT_EQ(r.exit_code, 0) << r.describe() << r.out;
    for (const char* h : {"web1", "web2", "db1"}) {
        EXPECT_NE(r.out.find(fmt::format("{} | out-42\n", h)), std::string::npos) << r.out;
        EXPECT_NE(r.err.find(fmt::format("{} | err-line\n", h)), std::string::npos) << r.err;
    }
    EXPECT_NE(r.out.find("RECAP"), std::string::npos);
    EXPECT_NE(r.out.find("3 host(s): 3 ok, 0 failed, 0 unreachable"), std::string::npos) << r.out;
}

TEST_F(RunCli, LimitPatternsSelectHosts) {
    auto r = run_tunnel(args({"--limit", "all:!web2", "--json"}, {"true"}));
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    auto doc = parse_json(r);
    ASSERT_EQ(doc["hosts"].size(), 2u) << r.out;
    EXPECT_EQ(doc["hosts"][0]["host"], "web1");
    EXPECT_EQ(doc["hosts"][1]["host"], "db1");

    auto none = run_tunnel(args({"--limit", "nomatch*"}, {"true"}));
    EXPECT_EQ(none.exit_code, 2) << none.describe();
    EXPECT_NE(none.err.find("no hosts matched"), std::string::npos) << none.err;
}

TEST_F(RunCli, FailedHostsSetExitOneAndJsonHasEveryResult) {
    const std::string cmd =
        fmt::format("if [ \"${{SSH_CONNECTION##* }}\" = {} ]; then echo bad; exit 3; fi; echo good",
                    sshd_[1].port());
    auto r = run_tunnel(args({"--json"}, {cmd}));
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    auto doc = parse_json(r);
    EXPECT_EQ(doc["summary"]["ok"], 2);
    EXPECT_EQ(doc["summary"]["failed"], 1);
    EXPECT_EQ(doc["summary"]["unreachable"], 0);
    const auto* web2 = host_entry(doc, "web2");
    ASSERT_NE(web2, nullptr);
    EXPECT_EQ((*web2)["status"], "failed");
    EXPECT_EQ((*web2)["exit_code"], 3);
    EXPECT_EQ((*web2)["stdout"], "bad\n");
    EXPECT_EQ((*host_entry(doc, "web1"))["stdout"], "good\n");
    EXPECT_EQ((*host_entry(doc, "db1"))["destination"],
              fmt::format("root@127.0.0.1:{}", sshd_[2].port()));
    EXPECT_TRUE(r.err.empty()) << "--json must keep stderr quiet: " << r.err;
}

TEST_F(RunCli, GroupOutputPrintsOneBlockPerHost) {
    auto r = run_tunnel(args({"--group-output", "--limit", "web1"}, {"echo a; echo b"}));
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_NE(r.out.find("web1 | ok | rc=0 | "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(">>\na\nb\n"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("web1 | a"), std::string::npos) << r.out;
}

TEST_F(RunCli, ServerKilledMidRunIsUnreachableWhileOthersSucceed) {
    auto home = temp_dir::create("tunnel-run-home");
    ASSERT_TRUE(home);
    const std::string marks = dir_->path();
    const std::string cmd =
        fmt::format("touch {}/started.${{SSH_CONNECTION##* }}; sleep 3; echo finished", marks);
    auto child = spawn_tunnel(args({"--json"}, {cmd}), home->path(), dir_->file("out.json"),
                              dir_->file("err.txt"));
    ASSERT_TRUE(child) << child.error().message;
    // Wait until every host is running the command, then kill web2's server.
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    auto started = [&] {
        for (const auto& s : sshd_)
            if (!std::filesystem::exists(fmt::format("{}/started.{}", marks, s.port())))
                return false;
        return true;
    };
    while (!started() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(20ms);
    ASSERT_TRUE(started()) << "the command did not start on every host";
    sshd_[1].stop();
    auto code = child->wait(30s);
    ASSERT_TRUE(code) << "tunnel run did not finish";
    EXPECT_EQ(*code, 4);
    auto out = read_text_file(dir_->file("out.json"));
    ASSERT_TRUE(out);
    auto doc = nlohmann::json::parse(*out, nullptr, false);
    ASSERT_FALSE(doc.is_discarded()) << *out;
    EXPECT_EQ((*host_entry(doc, "web2"))["status"], "unreachable") << *out;
    EXPECT_EQ((*host_entry(doc, "web1"))["status"], "ok") << *out;
    EXPECT_EQ((*host_entry(doc, "web1"))["stdout"], "finished\n");
    EXPECT_EQ((*host_entry(doc, "db1"))["status"], "ok") << *out;
}

TEST_F(RunCli, StalledHostIsBoundedByItsTimeout) {
    // A server that accepts and never says a word: the SSH handshake stalls.
    auto silent = echo_server::start();
    ASSERT_TRUE(silent) << silent.error().message;
    (*silent)->set_paused(true);
    auto inv = read_text_file(dir_->file("inventory.yml"));
    ASSERT_TRUE(inv);
    ASSERT_TRUE(write_text_file(
        dir_->file("with_stalled.yml"),
        *inv + fmt::format("    stalled:\n      hosts:\n        hung: {{ansible_port: {}}}\n",
                           (*silent)->port())));
    const auto t0 = std::chrono::steady_clock::now();
    auto r = run_tunnel(
        args({"--timeout", "2s", "--json"}, {"echo ok"}, dir_->file("with_stalled.yml")));
    const auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_EQ(r.exit_code, 4) << r.describe() << r.out;
    auto doc = parse_json(r);
    EXPECT_EQ(doc["summary"]["ok"], 3) << r.out;
    EXPECT_EQ((*host_entry(doc, "hung"))["status"], "unreachable") << r.out;
    EXPECT_LT((*host_entry(doc, "web1"))["duration_ms"].get<long>(), 1500)
        << "a stalled host held a healthy one";
    EXPECT_LT(took, 15s);
}

TEST_F(RunCli, BadUsageIsRefusedWithAHint) {
    auto r = run_tunnel(args({"--forks", "0"}, {"true"}));
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("--forks 0: must be from 1 to 1000"), std::string::npos) << r.err;
    r = run_tunnel(args({}, {"true"}, dir_->file("missing.yml")));
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("inventory"), std::string::npos) << r.err;
    ASSERT_TRUE(write_text_file(dir_->file("bad.yml"), "all:\n  hostz: {}\n"));
    r = run_tunnel(args({}, {"true"}, dir_->file("bad.yml")));
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("bad.yml:2: all.hostz: unknown key"), std::string::npos) << r.err;
}

TEST_F(RunCli, AdHocTargetsFromAnInlineList) {
    const std::string list =
        fmt::format("root@127.0.0.1:{},root@127.0.0.1:{},", sshd_[0].port(), sshd_[2].port());
    auto r = run_tunnel(args({"--json"}, {"echo hi"}, list));
    ASSERT_EQ(r.exit_code, 0) << r.describe() << r.out;
    auto doc = parse_json(r);
    EXPECT_EQ(doc["summary"]["ok"], 2) << r.out;
}

}  // namespace
}  // namespace tunnel::test
