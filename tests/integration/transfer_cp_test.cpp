// `tunnel cp` against a real OpenSSH sshd + sftp-server on 127.0.0.1. The
// server runs as root on this machine, so "remote" paths are checked directly
// on the local file system.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/net.hpp"
#include "support/process.hpp"
#include "support/sshd_fixture.hpp"
#include "support/tunnel_cli.hpp"
#include "transfer/copier.hpp"

namespace tunnel::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::vector<std::string> scp_flags(const sshd_fixture& sshd) {
    return {"-F", "/dev/null",
            "-P", std::to_string(sshd.port()),
            "-i", sshd.client_key_path(),
            "-o", "UserKnownHostsFile=" + sshd.known_hosts_path(),
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes"};
}

std::vector<std::string> cp_args(const sshd_fixture& sshd, std::vector<std::string> rest) {
    std::vector<std::string> args = {"cp"};
    auto f = scp_flags(sshd);
    args.insert(args.end(), f.begin(), f.end());
    args.insert(args.end(), rest.begin(), rest.end());
    return args;
}

std::string remote(const std::string& path) {
    return "root@127.0.0.1:" + path;
}

void write_random_file(const std::string& path, std::size_t size, unsigned seed = 1) {
    std::mt19937_64 rng(seed);
    std::string data(size, '\0');
    for (std::size_t i = 0; i + 8 <= size; i += 8) {
        auto v = rng();
        std::memcpy(data.data() + i, &v, 8);
    }
    for (std::size_t i = size & ~std::size_t{7}; i < size; ++i) data[i] = static_cast<char>(rng());
    ASSERT_TRUE(write_text_file(path, data));
}

std::string hash(const std::string& path) {
    auto h = transfer::sha256_file(path);
    return h ? *h : "error: " + h.error().message;
}

bool has_temp_files(const std::string& dir) {
    for (const auto& e : fs::recursive_directory_iterator(dir))
        if (e.path().filename().string().find(".tunnel-part") != std::string::npos) return true;
    return false;
}

class TransferCp : public ::testing::Test {
  protected:
    void SetUp() override {
        auto s = sshd_fixture::start();
        ASSERT_TRUE(s) << s.error().message;
        sshd_.emplace(std::move(*s));
        auto d = temp_dir::create("tunnel-cp");
        ASSERT_TRUE(d);
        dir_.emplace(std::move(*d));
        ::mkdir(dir_->file("local").c_str(), 0755);
        ::mkdir(dir_->file("remote").c_str(), 0755);
        ::mkdir(dir_->file("back").c_str(), 0755);
    }
    std::string local(const std::string& name) const { return dir_->file("local/" + name); }
    std::string far(const std::string& name) const { return dir_->file("remote/" + name); }
    std::string back(const std::string& name) const { return dir_->file("back/" + name); }

    std::optional<sshd_fixture> sshd_;
    std::optional<temp_dir> dir_;
};

TEST_F(TransferCp, RoundTripsKeepEveryByte) {
    const std::vector<std::pair<std::string, std::size_t>> files = {
        {"zero", 0}, {"one", 1}, {"odd", 261121}, {"big", 64u << 20}};
    for (const auto& [name, size] : files) {
        write_random_file(local(name), size, static_cast<unsigned>(size));
        auto up = run_tunnel(cp_args(*sshd_, {"--json", local(name), remote(far(name))}));
        ASSERT_TRUE(up.ok()) << name << ": " << up.describe();
        auto j = nlohmann::json::parse(up.out);
        EXPECT_EQ(j["files"], 1) << up.out;
        auto down = run_tunnel(cp_args(*sshd_, {remote(far(name)), back(name)}));
        ASSERT_TRUE(down.ok()) << name << ": " << down.describe();
        EXPECT_EQ(fs::file_size(back(name)), size) << name;
        EXPECT_EQ(hash(back(name)), hash(local(name))) << name;
        EXPECT_EQ(hash(far(name)), hash(local(name))) << name;
    }
    EXPECT_FALSE(has_temp_files(dir_->path()));
}

TEST_F(TransferCp, SparseFileRoundTripStaysSparseOnDownload) {
    {
        int fd = ::open(local("sparse").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::ftruncate(fd, 48 << 20), 0);
        ASSERT_EQ(::pwrite(fd, "middle", 6, 20 << 20), 6);
        ASSERT_EQ(::pwrite(fd, "start", 5, 4096), 5);
        ::close(fd);
    }
    ASSERT_TRUE(run_tunnel(cp_args(*sshd_, {local("sparse"), remote(far("sparse"))})).ok());
    auto down = run_tunnel(cp_args(*sshd_, {"--verify", remote(far("sparse")), back("sparse")}));
    ASSERT_TRUE(down.ok()) << down.describe();
    EXPECT_EQ(hash(back("sparse")), hash(local("sparse")));
    struct stat st {};
    ASSERT_EQ(::stat(back("sparse").c_str(), &st), 0);
    EXPECT_EQ(st.st_size, 48 << 20);
    EXPECT_LT(st.st_blocks * 512, 4 << 20) << "holes were written out as zeros";
}

TEST_F(TransferCp, RecursiveTreeKeepsModesAndTimes) {
    const std::string src = local("tree");
    fs::create_directories(src + "/a/b");
    fs::create_directories(src + "/empty");
    write_random_file(src + "/top.txt", 1000);
    write_random_file(src + "/a/run.sh", 300000, 2);
    write_random_file(src + "/a/b/secret", 10, 3);
    ::chmod((src + "/a/run.sh").c_str(), 0755);
    ::chmod((src + "/a/b/secret").c_str(), 0600);
    ::chmod((src + "/a").c_str(), 0750);
    ASSERT_EQ(::symlink("a/run.sh", (src + "/link").c_str()), 0);
    const std::vector<std::string> paths = {"",         "/a",        "/a/b",       "/empty",
                                            "/top.txt", "/a/run.sh", "/a/b/secret"};
    for (const auto& p : paths) {
        struct timespec t[2] = {{1600000000, 0}, {1600000000 + static_cast<long>(p.size()), 0}};
        ::utimensat(AT_FDCWD, (src + p).c_str(), t, 0);
    }
    auto up =
        run_tunnel(cp_args(*sshd_, {"-r", "-p", "--jobs", "3", src, remote(dir_->file("remote"))}));
    ASSERT_TRUE(up.ok()) << up.describe();
    auto down = run_tunnel(cp_args(*sshd_, {"-r", "-p", remote(far("tree")), dir_->file("back")}));
    ASSERT_TRUE(down.ok()) << down.describe();
    for (const auto& root : {far("tree"), back("tree")}) {
        for (const auto& p : paths) {
            struct stat a {
            }, b{};
            ASSERT_EQ(::lstat((src + p).c_str(), &a), 0);
            ASSERT_EQ(::lstat((root + p).c_str(), &b), 0) << root + p;
            EXPECT_EQ(a.st_mode, b.st_mode) << root + p;
            EXPECT_EQ(a.st_mtim.tv_sec, b.st_mtim.tv_sec) << root + p;
            if (S_ISREG(a.st_mode)) {
                EXPECT_EQ(hash(src + p), hash(root + p)) << root + p;
            }
        }
        EXPECT_EQ(fs::read_symlink(root + "/link"), "a/run.sh");
    }
}

TEST_F(TransferCp, UnchangedFilesAreSkipped) {
    write_random_file(local("f"), 5000);
    ASSERT_TRUE(run_tunnel(cp_args(*sshd_, {"-p", local("f"), remote(far("f"))})).ok());
    auto again = run_tunnel(cp_args(*sshd_, {"-p", "--json", local("f"), remote(far("f"))}));
    ASSERT_TRUE(again.ok()) << again.describe();
    auto j = nlohmann::json::parse(again.out);
    EXPECT_EQ(j["skipped"], 1);
    EXPECT_EQ(j["files"], 0);
    auto sum = run_tunnel(cp_args(*sshd_, {"--checksum", "--json", local("f"), remote(far("f"))}));
    ASSERT_TRUE(sum.ok()) << sum.describe();
    EXPECT_EQ(nlohmann::json::parse(sum.out)["skipped"], 1);
}

TEST_F(TransferCp, InterruptedUploadResumesWithoutEverExposingAPartialFile) {
    constexpr std::size_t size = 96u << 20;
    write_random_file(local("big"), size, 7);
    const std::string want = hash(local("big"));
    const std::string dest = far("big");
    std::mt19937 rng(std::random_device{}());
    int killed = 0;
    auto start = std::chrono::steady_clock::now();
    for (int attempt = 0; attempt < 60 && killed < 20; ++attempt) {
        auto child = spawn_tunnel(
            cp_args(*sshd_, {"--resume", "--inflight", "16", local("big"), remote(dest)}),
            dir_->path(), dir_->file("out.log"), dir_->file("err.log"));
        ASSERT_TRUE(child) << child.error().message;
        // A random point in the copy: the process is killed, not asked.
        auto delay = std::chrono::milliseconds(40 + rng() % 260);
        auto code = child->wait(delay);
        if (code) {
            ASSERT_EQ(*code, 0) << read_text_file(dir_->file("err.log")).value_or("");
            break;  // finished before the kill
        }
        child->signal(SIGKILL);
        (void)child->wait(5s);
        ++killed;
        // Never a partial destination: it is absent or complete.
        if (fs::exists(dest)) {
            EXPECT_EQ(hash(dest), want) << "after kill " << killed;
            break;
        }
    }
    // Each resumed attempt makes progress, so how many kills fit before the copy
    // completes depends on the machine's speed: require a handful, not a number
    // that only a slow machine reaches.
    EXPECT_GE(killed, 5) << "the copy finished too fast to interrupt it 5 times";
    auto last = run_tunnel(cp_args(*sshd_, {"--resume", "--verify", local("big"), remote(dest)}));
    ASSERT_TRUE(last.ok()) << last.describe();
    EXPECT_EQ(hash(dest), want);
    EXPECT_FALSE(has_temp_files(dir_->file("remote")));
    EXPECT_LT(std::chrono::steady_clock::now() - start, 30s);
}

TEST_F(TransferCp, KilledMultiStreamUploadIsNeverResumedFromItsTemp) {
    constexpr std::size_t size = 96u << 20;
    write_random_file(local("big"), size, 11);
    for (int delay_ms : {60, 150}) {
        auto child =
            spawn_tunnel(cp_args(*sshd_, {"--streams", "4", local("big"), remote(far("big"))}),
                         dir_->path(), dir_->file("out.log"), dir_->file("err.log"));
        ASSERT_TRUE(child);
        if (child->wait(std::chrono::milliseconds(delay_ms))) continue;
        child->signal(SIGKILL);
        (void)child->wait(5s);
        EXPECT_FALSE(fs::exists(far("big")) && hash(far("big")) != hash(local("big")));
    }
    auto r = run_tunnel(cp_args(*sshd_, {"--resume", local("big"), remote(far("big"))}));
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(hash(far("big")), hash(local("big")));
    // And an uninterrupted four-channel upload is byte for byte the source.
    auto multi =
        run_tunnel(cp_args(*sshd_, {"--streams", "4", local("big"), remote(far("multi"))}));
    ASSERT_TRUE(multi.ok()) << multi.describe();
    EXPECT_EQ(hash(far("multi")), hash(local("big")));
    EXPECT_FALSE(has_temp_files(dir_->file("remote")));
}

TEST_F(TransferCp, InterruptedDownloadResumes) {
    constexpr std::size_t size = 64u << 20;
    write_random_file(far("big"), size, 9);
    const std::string want = hash(far("big"));
    std::mt19937 rng(std::random_device{}());
    int killed = 0;
    for (int attempt = 0; attempt < 20 && killed < 5; ++attempt) {
        auto child = spawn_tunnel(
            cp_args(*sshd_, {"--resume", "--inflight", "16", remote(far("big")), back("big")}),
            dir_->path(), dir_->file("out.log"), dir_->file("err.log"));
        ASSERT_TRUE(child);
        if (child->wait(std::chrono::milliseconds(40 + rng() % 200))) break;
        child->signal(SIGKILL);
        (void)child->wait(5s);
        ++killed;
        if (fs::exists(back("big"))) {
            EXPECT_EQ(hash(back("big")), want);
            break;
        }
    }
    auto last = run_tunnel(cp_args(*sshd_, {"--resume", remote(far("big")), back("big")}));
    ASSERT_TRUE(last.ok()) << last.describe();
    EXPECT_EQ(hash(back("big")), want);
    EXPECT_FALSE(has_temp_files(dir_->file("back")));
}

TEST_F(TransferCp, DownloadRefusesLinksThatEscapeTheDestination) {
    const std::string src = far("evil");
    fs::create_directories(src + "/sub");
    write_random_file(src + "/ok.txt", 10);
    ASSERT_EQ(::symlink("/etc/passwd", (src + "/abs").c_str()), 0);
    ASSERT_EQ(::symlink("../../outside", (src + "/sub/up").c_str()), 0);
    ASSERT_EQ(::symlink("../ok.txt", (src + "/sub/fine").c_str()), 0);
    auto r = run_tunnel(cp_args(*sshd_, {"-r", remote(src), dir_->file("back")}));
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_NE(r.err.find("outside the destination"), std::string::npos) << r.err;
    EXPECT_TRUE(fs::exists(back("evil/ok.txt")));
    EXPECT_FALSE(fs::is_symlink(back("evil/abs")));
    EXPECT_FALSE(fs::is_symlink(back("evil/sub/up")));
    EXPECT_TRUE(fs::is_symlink(back("evil/sub/fine")));
}

TEST_F(TransferCp, DownloadNeverWritesThroughALocalSymlink) {
    fs::create_directories(far("tree/sub"));
    write_random_file(far("tree/sub/f"), 10);
    fs::create_directories(back("tree"));
    fs::create_directories(dir_->file("elsewhere"));
    ASSERT_EQ(::symlink(dir_->file("elsewhere").c_str(), back("tree/sub").c_str()), 0);
    auto r = run_tunnel(cp_args(*sshd_, {"-r", remote(far("tree")), dir_->file("back")}));
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("symlink"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir_->file("elsewhere/f")));
}

TEST_F(TransferCp, RefusesUploadThatCannotFit) {
    const std::string mnt = dir_->file("small");
    ::mkdir(mnt.c_str(), 0755);
    ASSERT_EQ(::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=1m"), 0) << std::strerror(errno);
    write_random_file(local("four"), 4u << 20);
    auto r = run_tunnel(cp_args(*sshd_, {local("four"), remote(mnt + "/four")}));
    auto listing = fs::directory_iterator(mnt) == fs::directory_iterator();
    ::umount2(mnt.c_str(), MNT_DETACH);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("not enough space"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(mnt), std::string::npos) << r.err;
    EXPECT_TRUE(listing) << "something was left in the full file system";
}

TEST_F(TransferCp, DiskFullPartWayLeavesNoPartialFiles) {
    const std::string mnt = dir_->file("small");
    ::mkdir(mnt.c_str(), 0755);
    ASSERT_EQ(::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=16m"), 0) << std::strerror(errno);
    fs::create_directories(local("two"));
    write_random_file(local("two/a"), 10u << 20, 1);
    write_random_file(local("two/b"), 10u << 20, 2);
    // Each file fits on its own; both together do not.
    auto r = run_tunnel(cp_args(*sshd_, {"-r", "--jobs", "2", local("two"), remote(mnt)}));
    std::vector<std::string> left;
    for (const auto& e : fs::recursive_directory_iterator(mnt))
        left.push_back(e.path().filename().string());
    const bool a_ok = fs::exists(mnt + "/two/a") && hash(mnt + "/two/a") == hash(local("two/a"));
    const bool b_ok = fs::exists(mnt + "/two/b") && hash(mnt + "/two/b") == hash(local("two/b"));
    const bool a_there = fs::exists(mnt + "/two/a"), b_there = fs::exists(mnt + "/two/b");
    ::umount2(mnt.c_str(), MNT_DETACH);
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_TRUE(r.err.find("is full") != std::string::npos ||
                r.err.find("not enough space") != std::string::npos)
        << r.err;
    EXPECT_FALSE(a_ok && b_ok) << "both cannot fit";
    EXPECT_EQ(a_there, a_ok);
    EXPECT_EQ(b_there, b_ok);
    for (const auto& name : left) EXPECT_EQ(name.find(".tunnel-part"), std::string::npos) << name;
}

TEST_F(TransferCp, BadInputIsOneClearLine) {
    auto missing = run_tunnel(cp_args(*sshd_, {local("nope"), remote(far("x"))}));
    EXPECT_EQ(missing.exit_code, 2) << missing.describe();
    EXPECT_NE(missing.err.find(local("nope")), std::string::npos) << missing.err;

    write_random_file(local("f"), 10);
    auto no_dir = run_tunnel(cp_args(*sshd_, {local("f"), remote(far("no/such/dir/f"))}));
    EXPECT_NE(no_dir.exit_code, 0);
    EXPECT_NE(no_dir.err.find("does not exist"), std::string::npos) << no_dir.err;

    auto no_path = run_tunnel(cp_args(*sshd_, {local("f"), "root@127.0.0.1:"}));
    EXPECT_EQ(no_path.exit_code, 2);
    EXPECT_NE(no_path.err.find("no path"), std::string::npos) << no_path.err;

    auto dir_no_r = run_tunnel(cp_args(*sshd_, {dir_->file("local"), remote(far("d"))}));
    EXPECT_EQ(dir_no_r.exit_code, 2);
    EXPECT_NE(dir_no_r.err.find("use -r"), std::string::npos) << dir_no_r.err;

    auto bad_mode = run_tunnel(cp_args(*sshd_, {"--mode", "999", local("f"), remote(far("f"))}));
    EXPECT_EQ(bad_mode.exit_code, 2);
    EXPECT_FALSE(fs::exists(far("f")));
}

TEST(TransferCpLocalInput, MissingLocalSourceIsRefusedBeforeConnecting) {
    // Nothing listens on the port: a client that connected first would fail
    // with 255 (connection refused); checking local paths first gives 2.
    auto port = unused_port();
    ASSERT_TRUE(port) << port.error().message;
    auto r =
        run_tunnel({"cp", "-F", "/dev/null", "-P", std::to_string(*port), "-o",
                    "StrictHostKeyChecking=yes", "/nonexistent/tunnel-source", "127.0.0.1:/tmp/"});
    EXPECT_EQ(r.exit_code, 2) << r.describe() << r.err;
    EXPECT_NE(r.err.find("/nonexistent/tunnel-source"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("refused"), std::string::npos) << r.err;
    auto down =
        run_tunnel({"cp", "-F", "/dev/null", "-P", std::to_string(*port), "-o",
                    "StrictHostKeyChecking=yes", "127.0.0.1:/etc/hostname", "/nonexistent/dir/"});
    EXPECT_EQ(down.exit_code, 2) << down.describe() << down.err;
    EXPECT_NE(down.err.find("/nonexistent/dir"), std::string::npos) << down.err;
    // -v after the subcommand is accepted, as scp users type it.
    auto verbose = run_tunnel({"cp", "-v", "-F", "/dev/null", "-P", std::to_string(*port),
                               "/nonexistent/tunnel-source", "127.0.0.1:/tmp/"});
    EXPECT_EQ(verbose.exit_code, 2) << verbose.describe() << verbose.err;
    EXPECT_EQ(verbose.err.find("--help"), std::string::npos) << verbose.err;
    EXPECT_NE(verbose.err.find("/nonexistent/tunnel-source"), std::string::npos) << verbose.err;
}

TEST_F(TransferCp, OwnerAndGroupThroughSudo) {
    write_random_file(local("f"), 10);
    auto no_sudo = run_tunnel(cp_args(*sshd_, {"--owner", "nobody", local("f"), remote(far("f"))}));
    EXPECT_EQ(no_sudo.exit_code, 2);
    EXPECT_NE(no_sudo.err.find("--sudo"), std::string::npos) << no_sudo.err;
    auto r = run_tunnel(cp_args(*sshd_, {"--sudo", "--owner", "nobody", "--group", "nogroup",
                                         local("f"), remote(far("f"))}));
    ASSERT_TRUE(r.ok()) << r.describe();
    struct stat st {};
    ASSERT_EQ(::stat(far("f").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 65534u);
    EXPECT_EQ(st.st_gid, 65534u);
}

TEST_F(TransferCp, ModeFlagSetsPermissions) {
    write_random_file(local("f"), 10);
    ::chmod(local("f").c_str(), 0644);
    ASSERT_TRUE(run_tunnel(cp_args(*sshd_, {"--mode", "0600", local("f"), remote(far("f"))})).ok());
    EXPECT_EQ(fs::status(far("f")).permissions(), fs::perms::owner_read | fs::perms::owner_write);
}

}  // namespace
}  // namespace tunnel::test
