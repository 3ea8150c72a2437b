// `tunnel sync` against a real sshd + sftp-server (running as root on this
// machine, so the remote side is checked on the local file system).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/process.hpp"
#include "support/sshd_fixture.hpp"
#include "support/tunnel_cli.hpp"

namespace tunnel::test {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> sync_args(const sshd_fixture& sshd, std::vector<std::string> rest) {
    std::vector<std::string> args = {"sync"};
    auto f = fixture_flags(sshd);
    args.insert(args.end(), f.begin(), f.end());
    args.insert(args.end(), rest.begin(), rest.end());
    return args;
}

std::string remote(const std::string& path) {
    return "root@127.0.0.1:" + path;
}

void put(const std::string& path, std::string_view text, long mtime = 1700000000) {
    fs::create_directories(fs::path(path).parent_path());
    ASSERT_TRUE(write_text_file(path, text));
    struct timespec t[2] = {{mtime, 0}, {mtime, 0}};
    ::utimensat(AT_FDCWD, path.c_str(), t, 0);
}

// rel path -> "type size mode mtime [content|target]" for a whole tree.
std::map<std::string, std::string> snapshot(const std::string& root, bool with_dir_mtime = true) {
    std::map<std::string, std::string> out;
    for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
         ++it) {
        struct stat st {};
        ::lstat(it->path().c_str(), &st);
        std::string rel = fs::relative(it->path(), root).string();
        std::string v = fmt::format("{:o}", st.st_mode);
        if (S_ISREG(st.st_mode))
            v += " " + std::to_string(st.st_mtim.tv_sec) + " " + *read_text_file(it->path());
        if (S_ISDIR(st.st_mode) && with_dir_mtime) v += " " + std::to_string(st.st_mtim.tv_sec);
        if (S_ISLNK(st.st_mode)) v += " -> " + fs::read_symlink(it->path()).string();
        out[rel] = v;
    }
    return out;
}

class TransferSync : public ::testing::Test {
  protected:
    void SetUp() override {
        auto s = sshd_fixture::start();
        ASSERT_TRUE(s) << s.error().message;
        sshd_.emplace(std::move(*s));
        auto d = temp_dir::create("tunnel-sync");
        ASSERT_TRUE(d);
        dir_.emplace(std::move(*d));
        src_ = dir_->file("src");
        put(src_ + "/a.txt", "alpha");
        put(src_ + "/sub/b.txt", "bravo");
        put(src_ + "/sub/deep/c.log", "charlie");
        put(src_ + "/sub/keep.log", "keep");
        put(src_ + "/build/out.o", "object");
        put(src_ + "/docs/x.tmp", "tmp");
        fs::create_directories(src_ + "/empty");
        ::chmod((src_ + "/a.txt").c_str(), 0600);
        fs::create_symlink("sub/b.txt", src_ + "/link");
    }

    std::optional<sshd_fixture> sshd_;
    std::optional<temp_dir> dir_;
    std::string src_;
};

TEST_F(TransferSync, PushMirrorsTheTreeAndASecondRunOnlyCompares) {
    const std::string dst = dir_->file("dst");
    auto first = run_tunnel(sync_args(*sshd_, {"--json", src_, remote(dst)}));
    ASSERT_TRUE(first.ok()) << first.describe();
    EXPECT_EQ(snapshot(dst), snapshot(src_));
    auto j = nlohmann::json::parse(first.out);
    EXPECT_EQ(j["files"], 6);
    EXPECT_EQ(j["links"], 1);

    auto second = run_tunnel(sync_args(*sshd_, {"--json", src_, remote(dst)}));
    ASSERT_TRUE(second.ok()) << second.describe();
    j = nlohmann::json::parse(second.out);
    EXPECT_EQ(j["files"], 0);
    EXPECT_EQ(j["skipped"], 6);
    EXPECT_EQ(j["bytes"], 0);

    put(src_ + "/sub/b.txt", "BRAVO", 1700000100);  // same size, new mtime
    auto third = run_tunnel(sync_args(*sshd_, {"--json", src_, remote(dst)}));
    ASSERT_TRUE(third.ok()) << third.describe();
    EXPECT_EQ(nlohmann::json::parse(third.out)["files"], 1);
    EXPECT_EQ(*read_text_file(dst + "/sub/b.txt"), "BRAVO");
}

TEST_F(TransferSync, PullMirrorsTheTree) {
    const std::string far = dir_->file("far");
    ASSERT_TRUE(run_tunnel(sync_args(*sshd_, {src_, remote(far)})).ok());
    const std::string back = dir_->file("back");
    auto r = run_tunnel(sync_args(*sshd_, {remote(far), back}));
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(snapshot(back), snapshot(src_));
}

TEST_F(TransferSync, IncludeExcludeAndDelete) {
    const std::string dst = dir_->file("dst");
    put(dst + "/stale.txt", "old");
    put(dst + "/sub/stale/x", "old");
    put(dst + "/protected.log", "excluded at the destination too");
    auto r = run_tunnel(
        sync_args(*sshd_, {"--include", "keep.log", "--exclude", "*.log", "--exclude", "/build/",
                           "--exclude", "docs/*.tmp", "--delete", src_, remote(dst)}));
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_TRUE(fs::exists(dst + "/a.txt"));
    EXPECT_TRUE(fs::exists(dst + "/sub/keep.log"));
    EXPECT_FALSE(fs::exists(dst + "/sub/deep/c.log"));
    EXPECT_TRUE(fs::exists(dst + "/sub/deep"));
    EXPECT_FALSE(fs::exists(dst + "/build"));
    EXPECT_FALSE(fs::exists(dst + "/docs/x.tmp"));
    EXPECT_FALSE(fs::exists(dst + "/stale.txt"));
    EXPECT_FALSE(fs::exists(dst + "/sub/stale"));
    EXPECT_TRUE(fs::exists(dst + "/protected.log")) << "excluded files are never deleted";
}

TEST_F(TransferSync, DryRunPrintsThePlanAndChangesNothing) {
    const std::string dst = dir_->file("dst");
    put(dst + "/a.txt", "changed!", 1600000000);
    put(dst + "/extra", "x");
    auto before = snapshot(dst);
    auto r = run_tunnel(sync_args(*sshd_, {"--dry-run", "--delete", src_, remote(dst)}));
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_NE(r.out.find("copy   a.txt (size differs)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("copy   sub/b.txt (new)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("delete extra"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("link   link -> sub/b.txt"), std::string::npos) << r.out;
    EXPECT_EQ(snapshot(dst), before);
    auto j = run_tunnel(sync_args(*sshd_, {"--dry-run", "--json", src_, remote(dst)}));
    ASSERT_TRUE(j.ok()) << j.describe();
    EXPECT_FALSE(nlohmann::json::parse(j.out)["plan"].empty());
    EXPECT_EQ(snapshot(dst), before);
}

TEST_F(TransferSync, ChecksumCatchesSameSizeSameMtimeChanges) {
    const std::string dst = dir_->file("dst");
    ASSERT_TRUE(run_tunnel(sync_args(*sshd_, {src_, remote(dst)})).ok());
    put(dst + "/a.txt", "ALPHA");  // same size and mtime as the source
    ASSERT_TRUE(run_tunnel(sync_args(*sshd_, {src_, remote(dst)})).ok());
    EXPECT_EQ(*read_text_file(dst + "/a.txt"), "ALPHA") << "size+mtime cannot see it";
    auto r = run_tunnel(sync_args(*sshd_, {"--checksum", "--json", src_, remote(dst)}));
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(*read_text_file(dst + "/a.txt"), "alpha");
    EXPECT_EQ(nlohmann::json::parse(r.out)["files"], 1);
}

TEST_F(TransferSync, BadInputIsOneClearLine) {
    auto glob =
        run_tunnel(sync_args(*sshd_, {"--exclude", "[oops", src_, remote(dir_->file("dst"))}));
    EXPECT_EQ(glob.exit_code, 2);
    EXPECT_NE(glob.err.find("[oops"), std::string::npos) << glob.err;
    auto missing = run_tunnel(sync_args(*sshd_, {dir_->file("nope"), remote(dir_->file("dst"))}));
    EXPECT_EQ(missing.exit_code, 2) << missing.describe();
    EXPECT_NE(missing.err.find(dir_->file("nope")), std::string::npos) << missing.err;
    auto no_parent = run_tunnel(sync_args(*sshd_, {src_, remote(dir_->file("no/such/dst"))}));
    EXPECT_EQ(no_parent.exit_code, 2) << no_parent.describe();
    EXPECT_NE(no_parent.err.find("does not exist"), std::string::npos) << no_parent.err;
    EXPECT_FALSE(fs::exists(dir_->file("dst")));
}

}  // namespace
}  // namespace tunnel::test
