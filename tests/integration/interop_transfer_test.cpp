// `tunnel cp` and `tunnel sync` against every real SSH server
// (interop_test_support.hpp; the SFTP server behind dropbear and tinysshd is
// OpenSSH's sftp-server, so what differs is the SSH layer: windows, packet
// sizes, channel requests): 8 MiB up and down, --resume from a partial temp
// file, --retries across a cut made by the fault proxy, and a small tree
// synced both ways.
#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "interop_test_support.hpp"
#include "support/fault_proxy.hpp"
#include "support/tcp_servers.hpp"

namespace tunnel::test::interop {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t mib = 1u << 20;
constexpr std::size_t transfer_size = 8 * mib;

cli_options limited() {
    cli_options options;
    options.timeout = 30s;
    return options;
}

bool has_temp_files(const std::string& dir) {
    for (const auto& e : fs::recursive_directory_iterator(dir))
        if (e.path().filename().string().find(".tunnel-part") != std::string::npos) return true;
    return false;
}

class InteropTransfer : public InteropTest {
  protected:
    void SetUp() override {
        InteropTest::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        for (const char* sub : {"local", "remote", "back"})
            ASSERT_EQ(::mkdir(file(sub).c_str(), 0755), 0);
    }
    std::string local(const std::string& name) const { return file("local/" + name); }
    std::string far(const std::string& name) const { return file("remote/" + name); }
    std::string back(const std::string& name) const { return file("back/" + name); }
};

TEST_P(InteropTransfer, CopyOf8MiBUpAndDownKeepsEveryByte) {
    ASSERT_TRUE(write_text_file(local("f"), random_bytes(transfer_size, 31)));
    const auto want = hash(local("f"));
    auto start = steady::now();
    const auto up = run_tunnel(command("cp", {local("f"), remote(far("f"))}), limited());
    const auto up_ms = ms_since(start);
    ASSERT_TRUE(up.ok()) << diag(up);
    EXPECT_EQ(hash(far("f")), want) << "upload changed the content";
    start = steady::now();
    const auto down = run_tunnel(command("cp", {remote(far("f")), back("f")}), limited());
    const auto down_ms = ms_since(start);
    ASSERT_TRUE(down.ok()) << diag(down);
    EXPECT_EQ(hash(back("f")), want) << "download changed the content";
    EXPECT_FALSE(has_temp_files(dir()));
    std::printf("%s: 8 MiB up in %lld ms, down in %lld ms\n", std::string(server().name()).c_str(),
                up_ms, down_ms);
}

// A partial temp file (what a killed copy leaves) is continued: its tail is
// read back over SFTP and compared with the source before the copy goes on
// from there; a temp file whose tail differs is started over. Both
// directions: the upload's temp file is on the server, the download's here.
TEST_P(InteropTransfer, ResumeContinuesAPartialTempFileBothWays) {
    const auto data = random_bytes(transfer_size, 32);
    ASSERT_TRUE(write_text_file(local("f"), data));
    ASSERT_TRUE(write_text_file(far("g"), data));
    const auto want = hash(local("f"));
    constexpr std::size_t partial = 6 * mib;
    // --inflight 4: only the last 4 chunks (~1 MiB) of the temp file are in
    // doubt, so the copy resumes near 5 MiB after checking the MiB before.
    struct direction {
        std::string temp, from, to;
    };
    const direction up{far(".f.tunnel-part"), local("f"), remote(far("f"))};
    const direction down{back(".g.tunnel-part"), remote(far("g")), back("g")};
    for (const auto& [temp, from, to] : {up, down}) {
        SCOPED_TRACE(temp);
        const std::string dest = to.rfind("root@", 0) == 0 ? far("f") : back("g");
        ASSERT_TRUE(write_text_file(temp, data.substr(0, partial), 0600));
        const auto good =
            run_tunnel(command("cp", {"--resume", "--inflight", "4", from, to}), limited());
        ASSERT_TRUE(good.ok()) << diag(good);
        EXPECT_EQ(good.err.find("does not match the source"), std::string::npos) << good.err;
        EXPECT_EQ(hash(dest), want);
        EXPECT_FALSE(fs::exists(temp));

        // The same temp file with its last 2 MiB altered (the block compared
        // lies in them for any window up to 1 MiB): not trusted.
        std::string altered = data.substr(0, partial);
        for (std::size_t i = partial - 2 * mib; i < partial; i += 4096) altered[i] ^= 0x5a;
        ASSERT_TRUE(write_text_file(temp, altered, 0600));
        fs::remove(dest);
        const auto redo =
            run_tunnel(command("cp", {"--resume", "--inflight", "4", from, to}), limited());
        ASSERT_TRUE(redo.ok()) << diag(redo);
        EXPECT_NE(redo.err.find("does not match the source; starting over"), std::string::npos)
            << redo.err;
        EXPECT_EQ(hash(dest), want);
        EXPECT_FALSE(fs::exists(temp));
    }
}

// The fault proxy resets the connection once 3 MiB have crossed it; with
// --retries the copy reconnects, resumes and ends with the source's bytes.
// A proxy for each direction: a connection of the upload that the proxy has
// not yet seen close would take the download's cut.
TEST_P(InteropTransfer, RetriesFinishACopyCutOnceEachWay) {
    ASSERT_TRUE(write_text_file(local("f"), random_bytes(transfer_size, 33)));
    const auto want = hash(local("f"));
    struct direction {
        std::string from, to, result;
    };
    for (const auto& [from, to, result] : {direction{local("f"), remote(far("f")), far("f")},
                                           direction{remote(far("f")), back("f"), back("f")}}) {
        SCOPED_TRACE(from + " -> " + to);
        auto proxy = fault_proxy::start(server().port());
        ASSERT_TRUE(proxy) << proxy.error().message;
        (*proxy)->cut_after(3 * mib, 1);
        const auto r =
            run_tunnel(command("cp", {"--retries", "3", from, to}, (*proxy)->port()), limited());
        ASSERT_TRUE(r.ok()) << diag(r);
        EXPECT_EQ((*proxy)->cuts(), 1) << "the proxy never cut: the test proved nothing";
        EXPECT_EQ((*proxy)->accepted(), 2) << r.err;
        EXPECT_NE(r.err.find("connection lost, retry 1/3"), std::string::npos) << r.err;
        EXPECT_EQ(hash(result), want);
    }
    EXPECT_FALSE(has_temp_files(dir()));
}

// A small tree (nested directories, a symlink, an empty file, modes) synced
// up, changed, synced again (only the change moves) and synced back down.
TEST_P(InteropTransfer, SyncOfASmallTreeBothWays) {
    const auto src = local("tree");
    fs::create_directories(src + "/sub/deeper");
    ASSERT_TRUE(write_text_file(src + "/a.txt", "alpha\n"));
    ASSERT_TRUE(write_text_file(src + "/empty", ""));
    ASSERT_TRUE(write_text_file(src + "/sub/b.bin", random_bytes(300'000, 34), 0600));
    ASSERT_TRUE(write_text_file(src + "/sub/deeper/run.sh", "#!/bin/sh\necho hi\n", 0755));
    fs::create_symlink("../a.txt", src + "/sub/link");

    const auto sync = [&](const std::string& from, const std::string& to) {
        return run_tunnel(command("sync", {"--json", from, to}), limited());
    };
    const auto up = sync(src, remote(far("tree")));
    ASSERT_TRUE(up.ok()) << diag(up);
    const auto same = [](const std::string& a, const std::string& b) {
        return run({"diff", "-r", "--no-dereference", a, b});
    };
    const auto d1 = same(src, far("tree"));
    EXPECT_TRUE(d1.ok()) << d1.out << d1.err;
    EXPECT_EQ(fs::status(far("tree/sub/deeper/run.sh")).permissions() & fs::perms::owner_exec,
              fs::perms::owner_exec);
    EXPECT_TRUE(fs::is_symlink(far("tree/sub/link")));

    ASSERT_TRUE(write_text_file(src + "/a.txt", "alpha, changed\n"));
    const auto again = sync(src, remote(far("tree")));
    ASSERT_TRUE(again.ok()) << diag(again);
    auto j = nlohmann::json::parse(again.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << again.out;
    EXPECT_EQ(j["files"], 1) << again.out;
    EXPECT_EQ(read_text_file(far("tree/a.txt")).value_or(""), "alpha, changed\n");

    const auto down = sync(remote(far("tree")), back("tree"));
    ASSERT_TRUE(down.ok()) << diag(down);
    const auto d2 = same(src, back("tree"));
    EXPECT_TRUE(d2.ok()) << d2.out << d2.err;
}

INSTANTIATE_TEST_SUITE_P(Servers, InteropTransfer, all_servers(), test_name);

}  // namespace
}  // namespace tunnel::test::interop
