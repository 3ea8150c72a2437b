// `tunnel script` and SFTP-only accounts (ForceCommand internal-sftp) against
// real sshd servers.
#include <glob.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/process.hpp"
#include "support/sshd_fixture.hpp"
#include "support/tunnel_cli.hpp"
#include "transfer/copier.hpp"

namespace tunnel::test {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> with_flags(const std::string& sub, const sshd_fixture& sshd,
                                    std::vector<std::string> rest) {
    std::vector<std::string> args = {sub};
    auto f = fixture_flags(sshd);
    if (sub == "cp") f[2] = "-P";  // scp spells the port -P
    args.insert(args.end(), f.begin(), f.end());
    args.insert(args.end(), rest.begin(), rest.end());
    return args;
}

// Remote temp dirs the runs left behind (the server is this machine).
std::vector<std::string> leftover_dirs(const std::string& marker_dir) {
    std::vector<std::string> out;
    glob_t g{};
    if (::glob((marker_dir + "/tunnel-script-*").c_str(), 0, nullptr, &g) == 0)
        for (std::size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
    globfree(&g);
    return out;
}

class TransferScript : public ::testing::Test {
  protected:
    void SetUp() override {
        auto s = sshd_fixture::start();
        ASSERT_TRUE(s) << s.error().message;
        sshd_.emplace(std::move(*s));
        auto d = temp_dir::create("tscript-test");
        ASSERT_TRUE(d);
        dir_.emplace(std::move(*d));
        // Each test gets its own remote temp directory, so tests running in
        // parallel never see each other's script directories.
        remote_tmp_ = dir_->file("remote-tmp");
        ASSERT_EQ(::mkdir(remote_tmp_.c_str(), 0755), 0);
    }
    void TearDown() override {
        EXPECT_TRUE(leftover_dirs(remote_tmp_).empty()) << "a script directory was left behind";
    }

    std::vector<std::string> script_flags(std::vector<std::string> rest) {
        rest.insert(rest.begin(), {"--remote-tmp", remote_tmp_});
        return with_flags("script", *sshd_, std::move(rest));
    }

    std::optional<sshd_fixture> sshd_;
    std::optional<temp_dir> dir_;
    std::string remote_tmp_;
};

TEST_F(TransferScript, ShebangArgumentsPrivateDirAndExitStatus) {
    const std::string script = dir_->file("check.sh");
    ASSERT_TRUE(write_text_file(script,
                                "#!/bin/sh\n"
                                "printf '%s|' \"$@\"; echo\n"
                                "stat -c %a \"$(dirname \"$0\")\"\n"
                                "echo \"dir=$(dirname \"$0\")\"\n"
                                "echo \"cwd=$(pwd) env=$GREETING\"\n"
                                "exit 7\n"));
    auto r = run_tunnel(script_flags({"--env", "GREETING=hi there", "--cwd", "/tmp",
                                      "root@127.0.0.1", script, "--", "a b", "$HOME", "it's"}));
    EXPECT_EQ(r.exit_code, 7) << r.describe();
    EXPECT_NE(r.out.find("a b|$HOME|it's|"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\n700\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("dir=" + remote_tmp_ + "/tunnel-script-"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("cwd=/tmp env=hi there"), std::string::npos) << r.out;
}

TEST_F(TransferScript, InterpreterAndPlainShFallback) {
    const std::string py = dir_->file("hello.py");
    ASSERT_TRUE(write_text_file(py, "import sys\nprint('py', sys.argv[1:])\n"));
    auto r = run_tunnel(
        script_flags({"--interpreter", "python3", "--json", "root@127.0.0.1", py, "--", "x"}));
    ASSERT_TRUE(r.ok()) << r.describe();
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["stdout"], "py ['x']\n");
    EXPECT_EQ(j["cleaned_up"], true);

    const std::string sh = dir_->file("plain");
    ASSERT_TRUE(write_text_file(sh, "echo from-sh $#\n"));
    auto p = run_tunnel(script_flags({"root@127.0.0.1", sh}));
    ASSERT_TRUE(p.ok()) << p.describe();
    EXPECT_EQ(p.out, "from-sh 0\n");
}

TEST_F(TransferScript, TimeoutStillCleansUp) {
    const std::string s = dir_->file("slow.sh");
    ASSERT_TRUE(write_text_file(s, "echo started\nsleep 60\n"));
    auto start = std::chrono::steady_clock::now();
    auto r = run_tunnel(script_flags({"--timeout", "1s", "root@127.0.0.1", s}));
    EXPECT_EQ(r.exit_code, 124) << r.describe();
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(15));
}

TEST_F(TransferScript, MissingScriptIsOneLine) {
    auto r = run_tunnel(script_flags({"root@127.0.0.1", dir_->file("nope.sh")}));
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find(dir_->file("nope.sh")), std::string::npos) << r.err;
}

// An account that may only use SFTP: copies and syncs work, remote hashing
// falls back to reading files back, scripts are refused with a reason.
TEST(TransferSftpOnly, CopySyncAndVerifyWorkScriptIsRefused) {
    sshd_options o;
    o.extra_config = {"Match User root", "ForceCommand internal-sftp"};
    auto sshd = sshd_fixture::start(o);
    ASSERT_TRUE(sshd) << sshd.error().message;
    auto d = temp_dir::create("tunnel-sftp-only");
    ASSERT_TRUE(d);
    std::string data(3u << 20, 'x');
    for (std::size_t i = 0; i < data.size(); i += 4096) data[i] = static_cast<char>(i / 4096);
    ASSERT_TRUE(write_text_file(d->file("f"), data));

    auto up = run_tunnel(
        with_flags("cp", *sshd, {"--verify", d->file("f"), "root@127.0.0.1:" + d->file("g")}));
    ASSERT_TRUE(up.ok()) << up.describe();
    EXPECT_NE(up.err.find("SFTP-only"), std::string::npos) << up.err;
    EXPECT_EQ(*transfer::sha256_file(d->file("g")), *transfer::sha256_file(d->file("f")));

    auto down =
        run_tunnel(with_flags("cp", *sshd, {"root@127.0.0.1:" + d->file("g"), d->file("h")}));
    ASSERT_TRUE(down.ok()) << down.describe();
    EXPECT_EQ(*read_text_file(d->file("h")), data);

    fs::create_directories(d->file("tree/sub"));
    ASSERT_TRUE(write_text_file(d->file("tree/sub/a"), "a"));
    auto sync = run_tunnel(with_flags(
        "sync", *sshd, {"--checksum", d->file("tree"), "root@127.0.0.1:" + d->file("mirror")}));
    ASSERT_TRUE(sync.ok()) << sync.describe();
    EXPECT_EQ(*read_text_file(d->file("mirror/sub/a")), "a");

    ASSERT_TRUE(write_text_file(d->file("s.sh"), "echo hi\n"));
    auto script = run_tunnel(with_flags("script", *sshd, {"root@127.0.0.1", d->file("s.sh")}));
    EXPECT_NE(script.exit_code, 0);
    EXPECT_NE(script.err.find("runs no commands"), std::string::npos) << script.err;
    EXPECT_EQ(std::count(script.err.begin(), script.err.end(), '\n'), 1) << script.err;
}

}  // namespace
}  // namespace tunnel::test
