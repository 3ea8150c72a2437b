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

}  // namespace
}  // namespace tunnel::test
