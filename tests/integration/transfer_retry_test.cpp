// `tunnel cp --retries` and `tunnel sync --retries` against a real OpenSSH
// sshd, through the fault proxy, which cuts the connection (TCP RST both
// ways) after a number of bytes, again and again. The copy must reconnect,
// resume from the verified tail of its temp file and end with the source's
// SHA-256; without retries it must stop at the first cut with a clear message
// and no half-written destination; an error that is not a connection loss
// must not be retried.
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/fault_proxy.hpp"
#include "support/net.hpp"
#include "support/process.hpp"
#include "support/sshd_fixture.hpp"
#include "support/tunnel_cli.hpp"
#include "transfer/checksum.hpp"

namespace tunnel::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr std::uint64_t mib = 1u << 20;

// Random bytes from the kernel: no two blocks alike, so a resume at a wrong
// offset cannot go unnoticed.
void write_random_file(const std::string& path, std::uint64_t size) {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr) << path;
    std::string buf(mib, '\0');
    for (std::uint64_t left = size; left > 0;) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(left, buf.size()));
        std::size_t got = 0;
        while (got < n) {
            ssize_t r = ::getrandom(buf.data() + got, n - got, 0);
            ASSERT_GT(r, 0);
            got += static_cast<std::size_t>(r);
        }
        ASSERT_EQ(std::fwrite(buf.data(), 1, n, f), n);
        left -= n;
    }
    ASSERT_EQ(std::fclose(f), 0);
}

std::string hash(const std::string& path) {
    auto h = transfer::sha256_file(path);
    return h ? *h : "error: " + h.error().message;
}

std::vector<std::string> temp_files(const std::string& dir) {
    std::vector<std::string> found;
    for (const auto& e : fs::recursive_directory_iterator(dir))
        if (e.path().filename().string().find(".tunnel-part") != std::string::npos)
            found.push_back(e.path().string());
    return found;
}

std::string remote(const std::string& path) {
    return "root@127.0.0.1:" + path;
}

int count(const std::string& text, const std::string& what) {
    int n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

class TransferRetry : public ::testing::Test {
  protected:
    void SetUp() override {
        auto s = sshd_fixture::start();
        ASSERT_TRUE(s) << s.error().message;
        sshd_.emplace(std::move(*s));
        auto d = temp_dir::create("tunnel-retry");
        ASSERT_TRUE(d);
        dir_.emplace(std::move(*d));
        for (const char* sub : {"local", "remote", "back"})
            ASSERT_EQ(::mkdir(dir_->file(sub).c_str(), 0755), 0);
        auto p = fault_proxy::start(sshd_->port());
        ASSERT_TRUE(p) << p.error().message;
        proxy_ = std::move(*p);
        // The client checks the host key under the proxy's port.
        known_hosts_ = dir_->file("known_hosts_via_proxy");
        ASSERT_TRUE(write_text_file(known_hosts_, "[127.0.0.1]:" + std::to_string(proxy_->port()) +
                                                      " " + sshd_->host_pubkey() + "\n"));
    }

    // Connection flags through the proxy: -P like scp for cp, -p for sync.
    std::vector<std::string> via_proxy(const std::string& port_flag) const {
        return {"-F",      "/dev/null",
                port_flag, std::to_string(proxy_->port()),
                "-i",      sshd_->client_key_path(),
                "-o",      "UserKnownHostsFile=" + known_hosts_,
                "-o",      "GlobalKnownHostsFile=/dev/null",
                "-o",      "StrictHostKeyChecking=yes",
                "-o",      "BatchMode=yes"};
    }
    std::vector<std::string> cp(std::vector<std::string> rest) const {
        std::vector<std::string> args = {"cp"};
        for (auto& a : via_proxy("-P")) args.push_back(a);
        args.insert(args.end(), rest.begin(), rest.end());
        return args;
    }
    std::vector<std::string> sync(std::vector<std::string> rest) const {
        std::vector<std::string> args = {"sync"};
        for (auto& a : via_proxy("-p")) args.push_back(a);
        args.insert(args.end(), rest.begin(), rest.end());
        return args;
    }
    static cli_options slow() {
        cli_options o;
        o.timeout = 150s;
        return o;
    }

    std::string local(const std::string& name) const { return dir_->file("local/" + name); }
    std::string far(const std::string& name) const { return dir_->file("remote/" + name); }
    std::string back(const std::string& name) const { return dir_->file("back/" + name); }

    std::optional<sshd_fixture> sshd_;
    std::optional<temp_dir> dir_;
    std::unique_ptr<fault_proxy> proxy_;
    std::string known_hosts_;
};

// libssh closes the socket itself when a read inside a channel drain fails
// (the peer reset the connection). A wait on that fd never ended, so a cut
// download hung until the SFTP deadline (60 s) in most runs instead of
// failing at once.
TEST_F(TransferRetry, ACutIsNoticedAtOnceNotAtTheSftpDeadline) {
    write_random_file(far("g"), 64 * mib);
    for (int run = 0; run < 5; ++run) {
        proxy_->cut_after(16 * mib, 1);
        const auto start = std::chrono::steady_clock::now();
        auto r = run_tunnel(cp({remote(far("g")), back("g")}), slow());
        const auto took = std::chrono::steady_clock::now() - start;
        EXPECT_NE(r.exit_code, 0) << r.describe();
        EXPECT_NE(r.err.find("Connection reset by peer"), std::string::npos) << r.err;
        EXPECT_LT(took, 15s) << "run " << run << ": " << r.err;
        EXPECT_FALSE(fs::exists(back("g")));
    }
    EXPECT_EQ(proxy_->cuts(), 5);
    auto resumed = run_tunnel(cp({"--resume", remote(far("g")), back("g")}), slow());
    ASSERT_TRUE(resumed.ok()) << resumed.describe();
    EXPECT_EQ(hash(back("g")), hash(far("g")));
    EXPECT_TRUE(temp_files(dir_->file("back")).empty());
}

TEST_F(TransferRetry, UploadOf256MiBSurvivesFiveCuts) {
    write_random_file(local("big"), 256 * mib);
    const std::string want = hash(local("big"));
    proxy_->cut_after(48 * mib, 5);
    const auto start = std::chrono::steady_clock::now();
    auto r = run_tunnel(cp({"--retries", "8", "--json", local("big"), remote(far("big"))}), slow());
    const auto took = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(r.ok()) << r.describe() << "\n" << r.err;
    EXPECT_EQ(proxy_->cuts(), 5);
    EXPECT_EQ(proxy_->accepted(), 6);
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["retries"], 5) << r.out;
    EXPECT_EQ(j["files"], 1) << r.out;
    EXPECT_EQ(j["failed"], 0) << r.out;
    EXPECT_EQ(j["bytes"], 256 * mib) << r.out;
    EXPECT_EQ(j["retry_errors"].size(), 5u) << r.out;
    // --json keeps stderr quiet: the retries are in the JSON.
    EXPECT_EQ(r.err.find("retry 1/"), std::string::npos) << r.err;
    EXPECT_EQ(hash(far("big")), want);
    EXPECT_TRUE(temp_files(dir_->file("remote")).empty());
    std::printf("[ measured ] 256 MiB upload with 5 cuts: %.1f s\n",
                std::chrono::duration<double>(took).count());
}

TEST_F(TransferRetry, DownloadOf256MiBSurvivesFiveCutsAndShowsEachRetry) {
    write_random_file(far("big"), 256 * mib);
    const std::string want = hash(far("big"));
    proxy_->cut_after(48 * mib, 5);
    const auto start = std::chrono::steady_clock::now();
    auto r = run_tunnel(cp({"--retries", "5", remote(far("big")), back("big")}), slow());
    const auto took = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(r.ok()) << r.describe() << "\n" << r.err;
    EXPECT_EQ(proxy_->cuts(), 5);
    for (int i = 1; i <= 5; ++i)
        EXPECT_NE(r.err.find(fmt::format("connection lost, retry {}/5 in ", i)), std::string::npos)
            << r.err;
    EXPECT_EQ(count(r.err, "connection lost, retry"), 5) << r.err;
    EXPECT_EQ(hash(back("big")), want);
    EXPECT_TRUE(temp_files(dir_->file("back")).empty());
    std::printf("[ measured ] 256 MiB download with 5 cuts: %.1f s\n",
                std::chrono::duration<double>(took).count());
}

TEST_F(TransferRetry, WithoutRetriesTheFirstCutEndsTheCopyAndNothingIsHalfWritten) {
    write_random_file(local("f"), 64 * mib);
    proxy_->cut_after(16 * mib, 1);
    auto up = run_tunnel(cp({"--retries", "0", local("f"), remote(far("f"))}), slow());
    EXPECT_EQ(up.exit_code, 255) << up.describe() << "\n" << up.err;
    EXPECT_EQ(proxy_->accepted(), 1);
    EXPECT_NE(up.err.find("connection lost"), std::string::npos) << up.err;
    EXPECT_NE(up.err.find("--resume"), std::string::npos) << up.err;
    EXPECT_NE(up.err.find("--retries"), std::string::npos) << up.err;
    EXPECT_NE(up.err.find(".f.tunnel-part"), std::string::npos) << "the temp file is reported\n"
                                                                << up.err;
    EXPECT_FALSE(fs::exists(far("f"))) << "a half-written destination";

    write_random_file(far("g"), 64 * mib);
    proxy_->cut_after(16 * mib, 1);
    auto down = run_tunnel(cp({remote(far("g")), back("g")}), slow());  // the default: 0
    EXPECT_EQ(down.exit_code, 255) << down.describe() << "\n" << down.err;
    EXPECT_EQ(proxy_->accepted(), 2);
    EXPECT_NE(down.err.find("connection lost"), std::string::npos) << down.err;
    EXPECT_NE(down.err.find(back(".g.tunnel-part")), std::string::npos) << down.err;
    EXPECT_FALSE(fs::exists(back("g"))) << "a half-written destination";
    // What was kept is a valid start for --resume.
    auto resumed = run_tunnel(cp({"--resume", remote(far("g")), back("g")}), slow());
    ASSERT_TRUE(resumed.ok()) << resumed.describe();
    EXPECT_EQ(hash(back("g")), hash(far("g")));
    EXPECT_TRUE(temp_files(dir_->file("back")).empty());
}

TEST_F(TransferRetry, PermanentErrorsAreNotRetried) {
    auto missing = run_tunnel(cp({"--retries", "5", remote(far("missing")), back("x")}));
    EXPECT_EQ(missing.exit_code, 2) << missing.describe();
    EXPECT_NE(missing.err.find(far("missing")), std::string::npos) << missing.err;
    EXPECT_EQ(missing.err.find("retry 1/"), std::string::npos) << missing.err;
    EXPECT_EQ(proxy_->accepted(), 1);

    write_random_file(local("f"), 1 * mib);
    auto no_dir = run_tunnel(cp({"--retries", "5", local("f"), remote(far("no/such/dir/f"))}));
    EXPECT_NE(no_dir.exit_code, 0) << no_dir.describe();
    EXPECT_NE(no_dir.exit_code, 255) << no_dir.describe();
    EXPECT_NE(no_dir.err.find("does not exist"), std::string::npos) << no_dir.err;
    EXPECT_EQ(no_dir.err.find("retry 1/"), std::string::npos) << no_dir.err;
    EXPECT_EQ(proxy_->accepted(), 2);

    auto sync_missing =
        run_tunnel(sync({"--retries", "5", remote(far("no-such-tree")), back("tree")}));
    EXPECT_NE(sync_missing.exit_code, 0) << sync_missing.describe();
    EXPECT_EQ(sync_missing.err.find("retry 1/"), std::string::npos) << sync_missing.err;
    EXPECT_EQ(proxy_->accepted(), 3);
}

// A tree of 12 MiB files copied one at a time (--jobs 1), the connection cut
// every 20 MiB: each attempt finishes a file or two and cuts the next.
class TransferRetryTree : public TransferRetry {
  protected:
    void SetUp() override {
        TransferRetry::SetUp();
        if (HasFatalFailure()) return;
        src_ = local("tree");
        fs::create_directories(src_ + "/sub/deeper");
        for (const auto& f : files_)
            if (f != "/small.txt") write_random_file(src_ + f, 12 * mib);
        write_random_file(src_ + "/small.txt", 1000);
        ASSERT_EQ(::symlink("sub/b.bin", (src_ + "/link").c_str()), 0);
    }
    void expect_same_tree(const std::string& root) const {
        for (const auto& f : files_) EXPECT_EQ(hash(root + f), hash(src_ + f)) << root + f;
        EXPECT_EQ(fs::read_symlink(root + "/link"), "sub/b.bin");
    }
    std::string src_;
    const std::vector<std::string> files_ = {"/a.bin", "/small.txt", "/sub/b.bin",
                                             "/sub/deeper/c.bin", "/sub/d.bin"};
};

TEST_F(TransferRetryTree, SyncResumesAfterCutsBothWaysAndCountsEachFileOnce) {
    proxy_->cut_after(20 * mib, 2);
    auto up = run_tunnel(
        sync({"--retries", "5", "--jobs", "1", "--json", src_, remote(far("tree"))}), slow());
    ASSERT_TRUE(up.ok()) << up.describe() << "\n" << up.err;
    EXPECT_EQ(proxy_->cuts(), 2);
    auto j = nlohmann::json::parse(up.out);
    EXPECT_EQ(j["retries"], 2) << up.out;
    EXPECT_EQ(j["files"], 5) << "each file counted once\n" << up.out;
    EXPECT_EQ(j["skipped"], 0) << "files finished before a cut are not 'unchanged'\n" << up.out;
    EXPECT_EQ(j["failed"], 0) << up.out;
    EXPECT_EQ(j["links"], 1) << up.out;
    EXPECT_EQ(j["bytes"], 48 * mib + 1000) << up.out;
    expect_same_tree(far("tree"));
    EXPECT_TRUE(temp_files(dir_->file("remote")).empty());

    proxy_->cut_after(20 * mib, 2);
    auto down = run_tunnel(
        sync({"--retries", "5", "--jobs", "1", "--json", remote(far("tree")), back("tree")}),
        slow());
    ASSERT_TRUE(down.ok()) << down.describe() << "\n" << down.err;
    EXPECT_EQ(proxy_->cuts(), 4);
    auto k = nlohmann::json::parse(down.out);
    EXPECT_EQ(k["retries"], 2) << down.out;
    EXPECT_EQ(k["files"], 5) << down.out;
    EXPECT_EQ(k["skipped"], 0) << down.out;
    EXPECT_EQ(k["links"], 1) << down.out;
    expect_same_tree(back("tree"));
    EXPECT_TRUE(temp_files(dir_->file("back")).empty());
}

TEST_F(TransferRetryTree, RecursiveCopyLeavesFinishedFilesAloneAfterACut) {
    proxy_->cut_after(20 * mib, 2);
    auto r = run_tunnel(
        cp({"-r", "--retries", "5", "--jobs", "1", "--json", src_, remote(dir_->file("remote"))}),
        slow());
    ASSERT_TRUE(r.ok()) << r.describe() << "\n" << r.err;
    EXPECT_EQ(proxy_->cuts(), 2);
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["retries"], 2) << r.out;
    EXPECT_EQ(j["files"], 5) << "a file copied before a cut is not copied again\n" << r.out;
    EXPECT_EQ(j["links"], 1) << r.out;
    EXPECT_EQ(j["failed"], 0) << r.out;
    expect_same_tree(far("tree"));
    EXPECT_TRUE(temp_files(dir_->file("remote")).empty());
}

TEST_F(TransferRetry, SpentRetriesEndWithAClearMessageAndTheTempFileKept) {
    write_random_file(local("f"), 64 * mib);
    proxy_->cut_after(12 * mib, 3);
    auto r = run_tunnel(cp({"--retries", "2", "--json", local("f"), remote(far("f"))}), slow());
    EXPECT_EQ(r.exit_code, 255) << r.describe() << "\n" << r.err;
    EXPECT_EQ(proxy_->cuts(), 3);
    EXPECT_EQ(proxy_->accepted(), 3);
    EXPECT_FALSE(fs::exists(far("f"))) << "a half-written destination";
    EXPECT_TRUE(fs::exists(far(".f.tunnel-part"))) << "kept for --resume";
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["retries"], 2) << r.out;
    EXPECT_EQ(j["failed"], 1) << r.out;
    const std::string error = j.value("error", "");
    EXPECT_NE(error.find("connection lost 3 times, gave up after 2 retries (--retries 2)"),
              std::string::npos)
        << r.out;
    EXPECT_NE(error.find("--resume"), std::string::npos) << r.out;
    ASSERT_EQ(j["errors"].size(), 1u) << r.out;
    EXPECT_NE(j["errors"][0].get<std::string>().find(".f.tunnel-part is kept"), std::string::npos)
        << r.out;
    // The kept temp file is where --resume continues.
    auto resumed = run_tunnel(cp({"--resume", "--verify", local("f"), remote(far("f"))}), slow());
    ASSERT_TRUE(resumed.ok()) << resumed.describe();
    EXPECT_EQ(hash(far("f")), hash(local("f")));
    EXPECT_TRUE(temp_files(dir_->file("remote")).empty());
}

TEST(TransferRetryFlag, BadValuesAreRefusedBeforeConnecting) {
    auto port = unused_port();
    ASSERT_TRUE(port) << port.error().message;
    const std::string p = std::to_string(*port);
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"-1", "cannot be negative"},
        {"many", "whole number"},
        {"2.5", "whole number"},
        {"101", "too many"},
        {"99999999999999999999", "too many"}};
    for (const auto& [value, why] : bad) {
        auto cp = run_tunnel({"cp", "-F", "/dev/null", "-P", p, "--retries=" + value,
                              "/etc/hostname", "127.0.0.1:/tmp/x"});
        EXPECT_EQ(cp.exit_code, 2) << value << ": " << cp.describe();
        EXPECT_NE(cp.err.find("--retries \"" + value + "\""), std::string::npos) << cp.err;
        EXPECT_NE(cp.err.find(why), std::string::npos) << cp.err;
        EXPECT_NE(cp.err.find("0 (no retries, the default) to 100"), std::string::npos) << cp.err;
        auto sync = run_tunnel(
            {"sync", "-F", "/dev/null", "-p", p, "--retries=" + value, "/etc", "127.0.0.1:/tmp/x"});
        EXPECT_EQ(sync.exit_code, 2) << value << ": " << sync.describe();
        EXPECT_NE(sync.err.find(why), std::string::npos) << sync.err;
    }
}

TEST(TransferRetryFlag, ARefusedConnectionIsRetriedAndThenReported) {
    auto port = unused_port();
    ASSERT_TRUE(port) << port.error().message;
    auto r = run_tunnel({"cp", "-F", "/dev/null", "-P", std::to_string(*port), "-o",
                         "StrictHostKeyChecking=yes", "--retries", "2", "/etc/hostname",
                         "127.0.0.1:/tmp/x"});
    EXPECT_EQ(r.exit_code, 255) << r.describe();
    EXPECT_NE(r.err.find("cannot reconnect, retry 1/2 in "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("cannot reconnect, retry 2/2 in "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("could not connect in 3 attempts (--retries 2)"), std::string::npos)
        << r.err;
}

}  // namespace
}  // namespace tunnel::test
